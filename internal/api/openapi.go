package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// OpenAPIYAML is the OpenAPI 3.1 document of the HTTP API, as written.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// openAPIDoc is the document as GET /openapi.json serves it.
type openAPIDoc struct {
	json []byte
	etag string
}

// loadOpenAPI converts the document to JSON once per process.
var loadOpenAPI = sync.OnceValues(func() (*openAPIDoc, error) {
	b, err := OpenAPIJSON()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &openAPIDoc{json: b, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}, nil
})

// OpenAPIJSON returns the OpenAPI document converted to JSON.
func OpenAPIJSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	doc, err := jsonValue(doc, "")
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// jsonValue checks that v, as YAML decoded it, has a JSON form: mapping
// keys must be strings (a status code written 200 rather than '200' would
// not be).
func jsonValue(v any, at string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			c, err := jsonValue(e, at+"/"+k)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
		return v, nil
	case map[any]any:
		return nil, fmt.Errorf("openapi.yaml: %s has a key that is not a string; quote it", at)
	case []any:
		for i, e := range v {
			c, err := jsonValue(e, fmt.Sprintf("%s/%d", at, i))
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
		return v, nil
	default:
		return v, nil
	}
}

// openAPI serves GET /openapi.json: public, cacheable and revalidated by
// its ETag, since it changes only with the binary.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	doc, err := loadOpenAPI()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("ETag", doc.etag)
	h.Set("Cache-Control", "public, max-age=300, must-revalidate")
	if etagMatch(r.Header.Get("If-None-Match"), doc.etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", "application/json")
	_, err = w.Write(doc.json)
	return err
}

// etagMatch reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
