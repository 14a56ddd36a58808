package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/apikeywallet/apiwallet"
)

// decode reads one JSON object from r's body into dst, bounded by limit
// bytes. Unknown fields, fields of the wrong type, trailing data and bodies
// over the limit are EINVALID/ETOOLARGE with the offending field named.
func decode(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return apiwallet.Errorf(apiwallet.EINVALID, "Content-Type must be application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		// Anything after the object but white space is an error too.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = terr
			if err == nil {
				err = errors.New("trailing data")
			}
		}
	}
	if err == nil {
		return nil
	}
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return bodyTooLarge(limit)
	case errors.Is(err, io.EOF):
		return apiwallet.Errorf(apiwallet.EINVALID, "the request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr):
		return apiwallet.Errorf(apiwallet.EINVALID, "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apiwallet.Errorf(apiwallet.EINVALID, "malformed JSON: the body ends too early")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return apiwallet.Errorf(apiwallet.EINVALID, "the body must be a JSON object")
		}
		return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: field, Detail: "must be " + jsonKind(typeErr.Type.Kind().String())}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: field, Detail: "is not a known field"}}}
	default:
		return apiwallet.Errorf(apiwallet.EINVALID, "malformed JSON: the body must be one JSON object")
	}
}

func bodyTooLarge(limit int64) error {
	return apiwallet.Errorf(apiwallet.ETOOLARGE, "the request body is larger than %d bytes", limit)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	default:
		if strings.HasPrefix(k, "int") || strings.HasPrefix(k, "uint") || strings.HasPrefix(k, "float") {
			return "a number"
		}
		return fmt.Sprintf("of type %s", k)
	}
}

// writeJSON writes v with status. Answers are not cached unless the
// handler said otherwise.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
