package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/apikeywallet/apiwallet"
)

// Call is the seed's POST /proxy body.
type Call struct {
	Service  string            `json:"service"`
	Endpoint string            `json:"endpoint"`
	Method   string            `json:"method"`
	Body     json.RawMessage   `json:"body"`
	Headers  map[string]string `json:"headers"`
	Query    map[string]string `json:"query"`
}

var callMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// Validate checks the call's fields and normalises the method.
func (c *Call) Validate() (escPath, rawQuery string, err error) {
	var v apiwallet.ValidationError
	c.Method = strings.ToUpper(strings.TrimSpace(c.Method))
	if c.Method == "" {
		c.Method = http.MethodGet
		if len(c.Body) > 0 && string(c.Body) != "null" {
			c.Method = http.MethodPost
		}
	}
	if !slices.Contains(callMethods, c.Method) {
		v.Add("method", "must be one of "+strings.Join(callMethods, ", "))
	}
	escPath, rawQuery, ok := safeEndpoint(c.Endpoint)
	if c.Endpoint == "" {
		v.Add("endpoint", "is required: a path such as /v1/charges")
	} else if !ok {
		v.Add("endpoint", "must be a path below the service's base URL, such as /v1/charges: no scheme, host, dot segments, encoded slashes or control characters")
	}
	for k, val := range c.Headers {
		if k == "" || strings.ContainsAny(k, "\r\n: ") || strings.ContainsAny(val, "\r\n\x00") {
			v.Add("headers."+k, "is not a valid header")
		}
	}
	for k := range c.Query {
		if k == "" {
			v.Add("query", "has an empty parameter name")
		}
	}
	if err := v.Err(); err != nil {
		return "", "", err
	}
	if len(c.Query) > 0 {
		q, _ := url.ParseQuery(rawQuery)
		for k, val := range c.Query {
			q.Set(k, val)
		}
		rawQuery = q.Encode()
	}
	return escPath, rawQuery, nil
}

// ServeCall serves POST /proxy: the call is already decoded and validated.
// It returns the refusal to write when the call ends before an upstream's
// answer is relayed.
func (p *Proxy) ServeCall(w http.ResponseWriter, r *http.Request, form *Call, escPath, rawQuery string) error {
	ctx := r.Context()
	var c *caller
	name := strings.ToLower(form.Service)
	if name == "" {
		raw, _ := credential(r, nil)
		var err error
		if c, err = p.authenticate(ctx, raw, r.Header.Get("X-Workspace-Id")); err != nil {
			return refuse(nil, err)
		}
		services, err := p.servicesWithKeys(ctx, c)
		if err != nil {
			return err
		}
		if len(services) != 1 {
			msg := "this workspace holds no keys yet: name the service"
			if len(services) > 1 {
				msg = "the workspace holds keys for several services: name one in \"service\" (" + strings.Join(services, ", ") + ")"
			}
			return withDetails(refusal(apiwallet.EINVALID, "service_required", "service-required", msg), 0,
				map[string]any{"candidates": services})
		}
		name = services[0]
	}
	svc, ok := p.catalog.Get(name)
	if !ok {
		return refusal(apiwallet.EINVALID, "unknown_service", "validation", fmt.Sprintf("no service %q in the catalog; GET /services lists them", name))
	}
	h := http.Header{}
	for k, v := range form.Headers {
		h.Set(k, v)
	}
	// The wallet credential travels with the call to be authenticated, and
	// is stripped like any client credential.
	h["Authorization"] = r.Header["Authorization"]
	h["X-Api-Key"] = r.Header["X-Api-Key"]
	if ws := r.Header.Get("X-Workspace-Id"); ws != "" {
		h.Set("X-Workspace-Id", ws)
	}
	// The call's request is the form's: its headers and query are where
	// the credential and the wallet's own headers are looked for.
	inner := *r
	u := *r.URL
	u.RawQuery = rawQuery
	inner.URL, inner.Header, inner.Method = &u, h, form.Method
	inner.Body, inner.ContentLength = nil, 0
	cl := p.newCall(w, &inner, svc, escPath)
	cl.caller = c
	if len(form.Body) > 0 && string(form.Body) != "null" {
		b := []byte(form.Body)
		var s string
		if json.Unmarshal(b, &s) == nil {
			b = []byte(s) // a JSON string is sent as its raw text
		} else if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "application/json")
		}
		cl.body, cl.length = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	}
	return p.serve(cl)
}

// servicesWithKeys lists the services the caller may call and holds
// enabled keys for.
func (p *Proxy) servicesWithKeys(ctx context.Context, c *caller) ([]string, error) {
	seen := map[string]bool{}
	enabled := true
	f := apiwallet.KeyFilter{WorkspaceID: c.workspaceID, Enabled: &enabled, Limit: 500}
	for {
		keys, err := p.keys.FindKeys(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if c.token == nil || c.token.Allows(k.Service) {
				seen[k.Service] = true
			}
		}
		if len(keys) < f.Limit {
			break
		}
		f.After = keys[len(keys)-1].ID
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}
