package api_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"go.yaml.in/yaml/v3"

	"github.com/apikeywallet/apiwallet/internal/api"
)

// anyMethods are the methods an ANY route of the table must document.
var anyMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// operation names one method on one path of the document.
type operation struct{ method, path string }

func (o operation) String() string { return o.method + " " + o.path }

// routeOperations turns a ServeMux pattern into the document's
// operations: {name...} wildcards and trailing-slash prefixes become one
// {name} parameter, {$} the exact path.
func routeOperations(t *testing.T, pattern string) []operation {
	t.Helper()
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		t.Fatalf("route %q has no method", pattern)
	}
	path = strings.ReplaceAll(path, "...}", "}")
	path = strings.TrimSuffix(path, "{$}")
	if strings.HasSuffix(path, "/") && path != "/" {
		path += "{path}"
	}
	methods := []string{method}
	if method == "ANY" {
		methods = anyMethods
	}
	var ops []operation
	for _, m := range methods {
		ops = append(ops, operation{m, path})
	}
	return ops
}

func documentOperations(c *contract) map[operation]*v3.Operation {
	out := map[operation]*v3.Operation{}
	for path, item := range c.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			out[operation{strings.ToUpper(method), path}] = op
		}
	}
	return out
}

// hasHeaderParam reports whether op, or the path it is on, documents the
// request header name.
func hasHeaderParam(c *contract, o operation, op *v3.Operation, name string) bool {
	params := slices.Clone(op.Parameters)
	params = append(params, c.model.Paths.PathItems.GetOrZero(o.path).Parameters...)
	for _, p := range params {
		if p.In == "header" && strings.EqualFold(p.Name, name) {
			return true
		}
	}
	return false
}

// TestOpenAPIDocumentsEveryRoute holds the route table the mux is built
// from and the document to each other, both ways, and checks that each
// operation's security says what the route's authentication does.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	c := testContract(t)
	ts := newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"))
	documented := documentOperations(c)
	served := map[operation]api.AuthKind{}
	for _, rt := range ts.api.Routes() {
		for _, op := range routeOperations(t, rt.Pattern) {
			served[op] = rt.Auth
		}
	}
	if len(served) < 60 {
		t.Fatalf("the route table has only %d operations", len(served))
	}
	var missing, extra []string
	for op := range served {
		if documented[op] == nil {
			missing = append(missing, op.String())
		}
	}
	for op := range documented {
		if _, ok := served[op]; !ok {
			extra = append(extra, op.String())
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes the document does not describe:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("operations of the document that no route serves:\n  %s", strings.Join(extra, "\n  "))
	}

	for op, kind := range served {
		doc := documented[op]
		if doc == nil {
			continue
		}
		schemes := map[string]bool{}
		anonymous := doc.Security == nil // no security: the document's default, which is none
		safe := op.method == "GET" || op.method == "HEAD" || op.method == "OPTIONS"
		for _, req := range doc.Security {
			if req.ContainsEmptyRequirement || req.Requirements == nil || req.Requirements.Len() == 0 {
				anonymous = true
				continue
			}
			for name := range req.Requirements.KeysFromOldest() {
				schemes[name] = true
			}
			// The cookie changes nothing without its CSRF token.
			if _, cookie := req.Requirements.Get("sessionCookie"); cookie && !safe {
				if _, csrf := req.Requirements.Get("csrfToken"); !csrf {
					t.Errorf("%s takes the session cookie without csrfToken", op)
				}
			}
		}
		if (kind == api.AuthLogin || kind == api.AuthLoginOrToken) && !hasHeaderParam(c, op, doc, "X-Workspace-Id") {
			t.Errorf("%s acts in a workspace but does not document X-Workspace-Id", op)
		}
		if doc.Security != nil && len(doc.Security) == 0 {
			anonymous = true
		}
		var problem string
		switch kind {
		case api.AuthPublic:
			if !anonymous {
				problem = "is public but the document asks for credentials"
			}
		case api.AuthLogin:
			if anonymous || schemes["bearerToken"] || !(schemes["bearerLogin"] || schemes["sessionCookie"]) {
				problem = "takes a login token only, but its security is not {bearerLogin or sessionCookie}"
			}
		case api.AuthLoginOrToken:
			if anonymous || !schemes["bearerToken"] || !schemes["bearerLogin"] {
				problem = "takes a login or an access token, but its security does not name bearerLogin and bearerToken"
			}
		case api.AuthProxy:
			if anonymous || !schemes["bearerToken"] {
				problem = "is a proxy route, but its security does not name bearerToken"
			}
		default:
			problem = "has an unknown auth kind " + string(kind)
		}
		if problem != "" {
			t.Errorf("%s %s", op, problem)
		}
	}
}

// TestOpenAPIDocumentsProblems checks that every operation documents the
// wallet's problem responses: at least one 4xx and the 500, each as
// application/problem+json with the Problem schema, like every error
// response it lists.
func TestOpenAPIDocumentsProblems(t *testing.T) {
	c := testContract(t)
	ops := documentOperations(c)
	if len(ops) == 0 {
		t.Fatal("the document has no operations")
	}
	for op, doc := range ops {
		if doc.Responses == nil || doc.Responses.Codes == nil {
			t.Errorf("%s documents no responses", op)
			continue
		}
		var client, internal bool
		for code, res := range doc.Responses.Codes.FromOldest() {
			if code < "400" {
				continue
			}
			// The health check answers 503 in its own (the seed's) shape.
			if op == (operation{"GET", "/monitoring/health"}) && code == "503" {
				continue
			}
			mt := res.Content.GetOrZero("application/problem+json")
			if mt == nil || res.Content.Len() != 1 {
				t.Errorf("%s: response %s is not (only) application/problem+json", op, code)
				continue
			}
			if mt.Schema == nil || !strings.HasSuffix(mt.Schema.GetReference(), "/Problem") {
				t.Errorf("%s: response %s is not the Problem schema", op, code)
				continue
			}
			if code[0] == '4' {
				client = true
			}
			if code == "500" {
				internal = true
			}
		}
		// The health check takes no input and is answered over plain HTTP
		// in production too: nothing makes it a 4xx.
		if !client && op != (operation{"GET", "/monitoring/health"}) {
			t.Errorf("%s documents no 4xx problem response", op)
		}
		if !internal {
			t.Errorf("%s documents no 500 problem response", op)
		}
	}
}

// TestOpenAPIServed fetches GET /openapi.json: the document, the same as
// openapi.yaml, public and revalidated by its ETag.
func TestOpenAPIServed(t *testing.T) {
	ts := newTestServer(t, filepath.Join(t.TempDir(), "wallet.db"))
	r := ts.do("GET", "/openapi.json", "", nil).want(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "public") {
		t.Errorf("Cache-Control = %q, want public", cc)
	}
	etag := r.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("ETag = %q", etag)
	}
	var served, written any
	if err := json.Unmarshal(r.Body, &served); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(api.OpenAPIYAML, &written); err != nil {
		t.Fatal(err)
	}
	// The YAML, through JSON, decodes to the same numbers as the served
	// document's.
	wb, _ := json.Marshal(written)
	_ = json.Unmarshal(wb, &written)
	sb, _ := json.Marshal(served)
	if string(sb) != string(wb) {
		t.Error("GET /openapi.json is not openapi.yaml")
	}
	if v := served.(map[string]any)["openapi"]; v != "3.1.0" {
		t.Errorf("openapi = %v", v)
	}

	r = ts.do("GET", "/openapi.json", "", nil, "If-None-Match", etag)
	if r.Status != http.StatusNotModified || len(r.Body) != 0 {
		t.Errorf("If-None-Match with the ETag: status %d, %d bytes", r.Status, len(r.Body))
	}
	r = ts.do("GET", "/openapi.json", "", nil, "If-None-Match", `"other"`)
	if r.Status != http.StatusOK {
		t.Errorf("If-None-Match with another ETag: status %d", r.Status)
	}
	// A login token is not needed, and not refused.
	a := ts.register("openapi@example.com")
	ts.do("GET", "/openapi.json", a.Token, nil).want(t, http.StatusOK)
}

// TestOpenAPIRouteOperations checks the pattern conversion the route test
// relies on.
func TestOpenAPIRouteOperations(t *testing.T) {
	for pattern, want := range map[string]string{
		"GET /keys/{id}":                 "GET /keys/{id}",
		"GET /{$}":                       "GET /",
		"GET /app/":                      "GET /app/{path}",
		"ANY /proxy/{service}/{path...}": "OPTIONS /proxy/{service}/{path}",
	} {
		ops := routeOperations(t, pattern)
		var got []string
		for _, op := range ops {
			got = append(got, op.String())
		}
		if !slices.Contains(got, want) {
			t.Errorf("%s: %v, want %s among them", pattern, got, want)
		}
	}
}
