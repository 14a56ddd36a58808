package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	valerrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/apikeywallet/apiwallet/internal/api"
)

// contract is the OpenAPI document the traffic of every API test is held
// to, built once per test binary: building the validator is the costly
// part.
type contract struct {
	doc       libopenapi.Document
	model     *v3.Document
	validator validator.Validator
	// problem validates the problems answered on paths the document does
	// not have (a 404 for an unknown wallet path).
	problem *base.Schema
	schemas schema_validation.SchemaValidator
	// mu serialises validation: the validator's caches are shared.
	mu sync.Mutex
}

var loadContract = sync.OnceValues(func() (*contract, error) {
	doc, err := libopenapi.NewDocument(api.OpenAPIYAML)
	if err != nil {
		return nil, err
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml does not build: %w", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("openapi.yaml: validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document:\n%s", validationText(verrs))
	}
	problem := m.Model.Components.Schemas.GetOrZero("Problem")
	if problem == nil {
		return nil, fmt.Errorf("openapi.yaml has no Problem schema")
	}
	return &contract{doc: doc, model: &m.Model, validator: v, problem: problem.Schema(),
		schemas: schema_validation.NewSchemaValidator()}, nil
})

func testContract(t testing.TB) *contract {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func validationText(errs []*valerrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  - %s", e.Message)
		if e.Reason != "" {
			fmt.Fprintf(&b, ": %s", e.Reason)
		}
		for _, f := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n      %s at %s", f.Reason, f.FieldPath)
		}
		if e.SpecLine > 0 {
			fmt.Fprintf(&b, " (openapi.yaml line %d)", e.SpecLine)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// contractTransport holds every request an API test sends, and the
// wallet's answer, to the OpenAPI document. A request is checked only when
// the wallet accepted it (status below 400): the tests send bad requests
// on purpose, and the answer to those is checked instead. Proxied answers
// are the upstream's and are not checked, but the wallet's own refusals
// on the proxy routes are.
type contractTransport struct {
	t    testing.TB
	next *http.Transport
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// real transport.
func (c *contractTransport) CloseIdleConnections() { c.next.CloseIdleConnections() }

func (c *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	proxied := strings.HasPrefix(req.URL.EscapedPath(), "/proxy/") || !api.WalletPath(req.URL.Path)
	var body []byte
	// A proxied call's body may be a stream the test writes as the
	// upstream reads it: it is never buffered, nor checked.
	if !proxied && req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	res, err := c.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	if proxied && (res.Header.Get("X-Wallet-Key-Id") != "" || res.StatusCode == http.StatusSwitchingProtocols) {
		return res, nil // the upstream's answer
	}
	if proxied && res.StatusCode < 400 {
		// No key id and no error: not a call the wallet made, such as a
		// browser's page at the root; the document describes those too.
		if !isPage(req) {
			return res, nil
		}
	}
	check := res
	if mediaType(res.Header.Get("Content-Type")) == "text/event-stream" {
		// A stream is the test's to read: check its status and headers.
		cp := *res
		cp.Body = http.NoBody
		check = &cp
	} else {
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, err
		}
		res.Body = io.NopCloser(bytes.NewReader(b))
		cp := *res
		cp.Body = io.NopCloser(bytes.NewReader(b))
		check = &cp
	}
	if msg := testContract(c.t).check(req, body, proxied, check); msg != "" {
		c.t.Errorf("%s %s answered %d, which the OpenAPI document (internal/api/openapi.yaml) does not allow:\n%s",
			req.Method, req.URL.RequestURI(), res.StatusCode, msg)
	}
	return res, nil
}

// isPage tells a browser's page request at the root, which the wallet
// serves itself.
func isPage(req *http.Request) bool {
	return req.URL.Path == "/" && (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		req.Header.Get("Authorization") == ""
}

func mediaType(ct string) string {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt
}

// check returns what the document finds wrong with the exchange, or "".
func (c *contract) check(req *http.Request, body []byte, proxied bool, res *http.Response) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	vreq := req.Clone(req.Context())
	vreq.Body = io.NopCloser(bytes.NewReader(body))
	if proxied {
		// The document's {path} stands for any number of segments, which
		// a path template cannot say: check against one.
		vreq.URL.Path, vreq.URL.RawPath = "/_", ""
		if rest, ok := strings.CutPrefix(req.URL.EscapedPath(), "/proxy/"); ok {
			svc, _, _ := strings.Cut(rest, "/")
			if svc == "" || strings.ContainsAny(svc, "%.") {
				svc = "_"
			}
			vreq.URL.Path = "/proxy/" + svc + "/_"
		}
		if isPage(req) {
			vreq.URL.Path = "/"
		}
	}
	// The dashboard's {path} is any number of segments too.
	for _, prefix := range []string{"/app/", "/static/"} {
		if strings.HasPrefix(vreq.URL.Path, prefix) {
			vreq.URL.Path, vreq.URL.RawPath = prefix+"_", ""
		}
	}
	res.Request = vreq
	if msg := problemStatus(res); msg != "" {
		return msg
	}
	ok, errs := c.validator.ValidateHttpResponse(vreq, res)
	if !ok && res.StatusCode >= 400 && pathErrors(errs) {
		// A path or method the wallet does not serve: its answer must
		// still be a problem.
		return c.checkProblem(res)
	}
	if !ok {
		return validationText(errs)
	}
	if res.StatusCode >= 400 || proxied {
		return ""
	}
	vreq.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := c.validator.ValidateHttpRequest(vreq); !ok {
		return "the wallet accepted a request the document says is invalid:\n" + validationText(errs)
	}
	return ""
}

// problemStatus checks what a schema cannot: a problem's status member
// is the response's status.
func problemStatus(res *http.Response) string {
	if mediaType(res.Header.Get("Content-Type")) != "application/problem+json" {
		return ""
	}
	b, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(b))
	var p struct {
		Status int `json:"status"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Sprintf("  - the problem body is not JSON: %v\n", err)
	}
	if p.Status != res.StatusCode {
		return fmt.Sprintf("  - the problem says status %d\n", p.Status)
	}
	return ""
}

func pathErrors(errs []*valerrors.ValidationError) bool {
	for _, e := range errs {
		if e.ValidationType != helpers.PathValidation {
			return false
		}
	}
	return len(errs) > 0
}

func (c *contract) checkProblem(res *http.Response) string {
	if mediaType(res.Header.Get("Content-Type")) != "application/problem+json" {
		return fmt.Sprintf("  - an error answered with Content-Type %q, not application/problem+json\n",
			res.Header.Get("Content-Type"))
	}
	b, _ := io.ReadAll(res.Body)
	if ok, errs := c.schemas.ValidateSchemaBytes(c.problem, b); !ok {
		return validationText(errs)
	}
	return ""
}
