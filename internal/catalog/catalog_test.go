package catalog

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apikeywallet/apiwallet"
)

func valid() Service {
	return Service{
		Name:    "acme",
		BaseURL: "https://api.acme.test",
		Auth:    AuthScheme{Kind: AuthBearer},
	}
}

// TestDefaults protects the built-in catalog: every default is valid and
// the five required services are there from the first start.
func TestDefaults(t *testing.T) {
	c := New()
	want := []string{"anthropic", "googlemaps", "openai", "openweather", "stripe"}
	var got []string
	for _, s := range c.List() {
		got = append(got, s.Name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List names = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name, base string
		auth       AuthScheme
		shape      ErrorShape
	}{
		{"stripe", "https://api.stripe.com", AuthScheme{Kind: AuthBearer}, ShapeStripe},
		{"openai", "https://api.openai.com", AuthScheme{Kind: AuthBearer}, ShapeOpenAI},
		{"anthropic", "https://api.anthropic.com", AuthScheme{Kind: AuthHeader, Name: "x-api-key"}, ShapeAnthropic},
		{"openweather", "https://api.openweathermap.org", AuthScheme{Kind: AuthQuery, Name: "appid"}, ShapeNone},
		{"googlemaps", "https://maps.googleapis.com", AuthScheme{Kind: AuthQuery, Name: "key"}, ShapeNone},
	} {
		s, ok := c.Get(tc.name)
		if !ok {
			t.Fatalf("Get(%q) missing", tc.name)
		}
		if s.BaseURL != tc.base || s.Auth != tc.auth || s.ErrorShape != tc.shape {
			t.Errorf("%s = %+v %+v %q", tc.name, s.BaseURL, s.Auth, s.ErrorShape)
		}
	}
	ow, _ := c.Get("openweather")
	if ow.FreeQuota != 1000 || ow.FreePeriod != PeriodDay {
		t.Errorf("openweather free tier = %d/%s, want 1000/day", ow.FreeQuota, ow.FreePeriod)
	}
	an, _ := c.Get("anthropic")
	if an.Headers["Anthropic-Version"] != "2023-06-01" {
		t.Errorf("anthropic headers = %v", an.Headers)
	}
}

// TestValidate protects Put from storing a service the proxy cannot use
// safely: every bad field is named, and a refused Put changes nothing.
func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Service)
		fields []string // empty: valid
	}{
		{"valid", func(*Service) {}, nil},
		{"name with dash", func(s *Service) { s.Name = "my-api2" }, nil},
		{"empty name", func(s *Service) { s.Name = "" }, []string{"name"}},
		{"upper-case name", func(s *Service) { s.Name = "Acme" }, []string{"name"}},
		{"name starts with digit", func(s *Service) { s.Name = "1acme" }, []string{"name"}},
		{"name with underscore", func(s *Service) { s.Name = "my_api" }, []string{"name"}},
		{"name with slash", func(s *Service) { s.Name = "a/b" }, []string{"name"}},
		{"name ends with dash", func(s *Service) { s.Name = "acme-" }, []string{"name"}},
		{"name too long", func(s *Service) { s.Name = strings.Repeat("a", 64) }, []string{"name"}},
		{"http url", func(s *Service) { s.BaseURL = "http://127.0.0.1:8080/mock/" }, nil},
		{"url with path", func(s *Service) { s.BaseURL = "https://gw.example.com/openai" }, nil},
		{"relative url", func(s *Service) { s.BaseURL = "/v1" }, []string{"baseUrl"}},
		{"empty url", func(s *Service) { s.BaseURL = "" }, []string{"baseUrl"}},
		{"ftp url", func(s *Service) { s.BaseURL = "ftp://example.com" }, []string{"baseUrl"}},
		{"javascript url", func(s *Service) { s.BaseURL = "javascript:alert(1)" }, []string{"baseUrl"}},
		{"no host", func(s *Service) { s.BaseURL = "https:///path" }, []string{"baseUrl"}},
		{"userinfo", func(s *Service) { s.BaseURL = "https://user:pw@api.acme.test" }, []string{"baseUrl"}},
		{"query", func(s *Service) { s.BaseURL = "https://api.acme.test/?key=1" }, []string{"baseUrl"}},
		{"empty query", func(s *Service) { s.BaseURL = "https://api.acme.test/x?" }, []string{"baseUrl"}},
		{"fragment", func(s *Service) { s.BaseURL = "https://api.acme.test/#x" }, []string{"baseUrl"}},
		{"dot segment", func(s *Service) { s.BaseURL = "https://api.acme.test/a/../b" }, []string{"baseUrl"}},
		{"unknown auth", func(s *Service) { s.Auth.Kind = "oauth" }, []string{"auth.kind"}},
		{"bearer with name", func(s *Service) { s.Auth.Name = "x" }, []string{"auth.name"}},
		{"header without name", func(s *Service) { s.Auth = AuthScheme{Kind: AuthHeader} }, []string{"auth.name"}},
		{"header bad name", func(s *Service) { s.Auth = AuthScheme{Kind: AuthHeader, Name: "x api key"} }, []string{"auth.name"}},
		{"header hop-by-hop", func(s *Service) { s.Auth = AuthScheme{Kind: AuthHeader, Name: "Connection"} }, []string{"auth.name"}},
		{"header raw Authorization", func(s *Service) { s.Auth = AuthScheme{Kind: AuthHeader, Name: "Authorization"} }, nil},
		{"query without name", func(s *Service) { s.Auth = AuthScheme{Kind: AuthQuery} }, []string{"auth.name"}},
		{"query bad name", func(s *Service) { s.Auth = AuthScheme{Kind: AuthQuery, Name: "a&b"} }, []string{"auth.name"}},
		{"negative price", func(s *Service) { s.PriceMicros = -1 }, []string{"priceMicros"}},
		{"negative quota", func(s *Service) { s.FreeQuota = -1 }, []string{"freeQuota"}},
		{"bad period", func(s *Service) { s.FreePeriod = "week" }, []string{"freePeriod"}},
		{"bad shape", func(s *Service) { s.ErrorShape = "github" }, []string{"errorShape"}},
		{"header CRLF", func(s *Service) { s.Headers = map[string]string{"X-A": "a\r\nHost: evil"} }, []string{"headers.X-A"}},
		{"header Host", func(s *Service) { s.Headers = map[string]string{"host": "evil"} }, []string{"headers.host"}},
		{"header Authorization", func(s *Service) { s.Headers = map[string]string{"Authorization": "x"} }, []string{"headers.Authorization"}},
		{"header wallet", func(s *Service) { s.Headers = map[string]string{"X-Wallet-Key-Id": "x"} }, []string{"headers.X-Wallet-Key-Id"}},
		{"header bad name", func(s *Service) { s.Headers = map[string]string{"a b": "x"} }, []string{"headers.a b"}},
		{"header is the key header", func(s *Service) {
			s.Auth = AuthScheme{Kind: AuthHeader, Name: "x-api-key"}
			s.Headers = map[string]string{"X-API-KEY": "x"}
		}, []string{"headers.X-API-KEY"}},
		{"empty key prefix", func(s *Service) { s.KeyPrefixes = []string{""} }, []string{"keyPrefixes[0]"}},
		{"several", func(s *Service) { s.Name, s.BaseURL, s.PriceMicros = "", "x", -5 }, []string{"name", "baseUrl", "priceMicros"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.edit(&s)
			c := NewEmpty()
			err := c.Put(s)
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				if _, ok := c.Get(s.Name); !ok {
					t.Fatal("valid service not stored")
				}
				return
			}
			var e *apiwallet.Error
			if !errors.As(err, &e) || e.Code != apiwallet.EINVALID {
				t.Fatalf("Put error = %v, want EINVALID", err)
			}
			var got []string
			for _, f := range e.Fields {
				got = append(got, f.Field)
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %v, want %v", got, tt.fields)
			}
			if c.Len() != 0 {
				t.Error("refused Put changed the catalog")
			}
		})
	}
}

// TestNormalize protects the canonical form the proxy relies on.
func TestNormalize(t *testing.T) {
	c := NewEmpty()
	s := valid()
	s.BaseURL = " https://api.acme.test/v1/ "
	s.Headers = map[string]string{"acme-version": " 2024 "}
	s.FreeQuota = 10
	if err := c.Put(s); err != nil {
		t.Fatal(err)
	}
	s.Headers["acme-version"] = "mutated"
	got, _ := c.Get("acme")
	if got.BaseURL != "https://api.acme.test/v1" {
		t.Errorf("BaseURL = %q", got.BaseURL)
	}
	if got.Headers["Acme-Version"] != "2024" || len(got.Headers) != 1 {
		t.Errorf("Headers = %v (caller's map must not be shared)", got.Headers)
	}
	if got.DisplayName != "acme" || got.FreePeriod != PeriodMonth {
		t.Errorf("DisplayName %q FreePeriod %q", got.DisplayName, got.FreePeriod)
	}
	if u := got.URL(); u.Host != "api.acme.test" || u.Path != "/v1" {
		t.Errorf("URL() = %v", u)
	}
	if got.EnvName() != "ACME" {
		t.Errorf("EnvName = %q", got.EnvName())
	}
}

// TestPutDeleteSnapshotLoad protects persistence: Snapshot round-trips
// through Load, and Delete reports a missing service.
func TestPutDeleteSnapshotLoad(t *testing.T) {
	c := New()
	if err := c.Put(valid()); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("googlemaps"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("googlemaps"); apiwallet.ErrorCode(err) != apiwallet.ENOTFOUND {
		t.Fatalf("second Delete = %v, want ENOTFOUND", err)
	}
	snap := c.Snapshot()
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var restored []Service
	if err := json.Unmarshal(b, &restored); err != nil {
		t.Fatal(err)
	}
	c2 := NewEmpty()
	if err := c2.Load(restored); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c2.Snapshot()) != fmt.Sprint(snap) {
		t.Errorf("Load(Snapshot) differs:\n%v\n%v", c2.Snapshot(), snap)
	}
	if _, ok := c2.Get("googlemaps"); ok {
		t.Error("deleted service came back")
	}

	bad := append(restored, Service{Name: "stripe", BaseURL: "https://x.test", Auth: AuthScheme{Kind: AuthBearer}}, Service{Name: "BAD"})
	err = c2.Load(bad)
	var e *apiwallet.Error
	if !errors.As(err, &e) || len(e.Fields) == 0 || !strings.HasPrefix(e.Fields[0].Field, "services[") {
		t.Fatalf("Load(bad) = %v", err)
	}
	if c2.Len() != len(snap) {
		t.Error("refused Load changed the catalog")
	}
}

// TestApplyEnv protects <SERVICE>_BASE_URL: it overrides the base URL of
// current and later services, is not persisted, and rejects bad URLs.
func TestApplyEnv(t *testing.T) {
	c := New()
	err := c.ApplyEnv(map[string]string{
		"stripe": "http://127.0.0.1:9999/",
		"my_api": "http://mock.local/api",
		"nosuch": "https://elsewhere.test",
	})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := c.Get("stripe")
	if s.BaseURL != "http://127.0.0.1:9999" || !s.BaseURLFromEnv || s.URL().Host != "127.0.0.1:9999" {
		t.Errorf("stripe = %q fromEnv=%v url=%v", s.BaseURL, s.BaseURLFromEnv, s.URL())
	}
	o, _ := c.Get("openai")
	if o.BaseURL != "https://api.openai.com" || o.BaseURLFromEnv {
		t.Errorf("openai changed: %q", o.BaseURL)
	}
	// Admin edits of an overridden service keep the override.
	s.DisplayName = "Stripe EU"
	if err := c.Put(s); err != nil {
		t.Fatal(err)
	}
	s, _ = c.Get("stripe")
	if s.BaseURL != "http://127.0.0.1:9999" || s.DisplayName != "Stripe EU" {
		t.Errorf("after Put: %q %q", s.BaseURL, s.DisplayName)
	}
	// A service added later with a dash in its name picks up MY_API_BASE_URL.
	add := valid()
	add.Name = "my-api"
	if err := c.Put(add); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Get("my-api"); m.BaseURL != "http://mock.local/api" {
		t.Errorf("my-api = %q", m.BaseURL)
	}
	// The override is never persisted.
	for _, s := range c.Snapshot() {
		if s.BaseURLFromEnv || strings.Contains(s.BaseURL, "127.0.0.1") || strings.Contains(s.BaseURL, "mock.local") {
			t.Errorf("Snapshot holds an env override: %+v", s)
		}
	}
	if err := c.ApplyEnv(map[string]string{"openai": "https://u:p@evil.test"}); apiwallet.ErrorCode(err) != apiwallet.EINVALID {
		t.Fatalf("bad env URL = %v", err)
	}
	if s, _ := c.Get("stripe"); s.BaseURL != "http://127.0.0.1:9999" {
		t.Error("refused ApplyEnv changed the catalog")
	}
	// An empty layer restores the configured URL.
	if err := c.ApplyEnv(nil); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Get("stripe"); s.BaseURL != "https://api.stripe.com" {
		t.Errorf("after clearing env: %q", s.BaseURL)
	}
}

func TestGetCaseInsensitiveFallback(t *testing.T) {
	c := New()
	if _, ok := c.Get("OpenAI"); !ok {
		t.Error("Get(OpenAI) missing")
	}
	if _, ok := c.Get("nosuch"); ok {
		t.Error("Get(nosuch) found")
	}
}

// TestInject protects key injection for every auth kind: the client's own
// credential of that kind is replaced, never forwarded next to the key.
func TestInject(t *testing.T) {
	tests := []struct {
		name    string
		auth    AuthScheme
		headers map[string]string
		url     string
		reqHdr  http.Header
		key     string
		check   func(t *testing.T, r *http.Request)
	}{
		{
			name: "bearer", auth: AuthScheme{Kind: AuthBearer}, url: "/v1/charges",
			reqHdr: http.Header{"Authorization": {"Bearer wallet-token"}}, key: "sk_test_1",
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Values("Authorization"); !slices.Equal(got, []string{"Bearer sk_test_1"}) {
					t.Errorf("Authorization = %q", got)
				}
			},
		},
		{
			name: "basic", auth: AuthScheme{Kind: AuthBasic}, url: "/x", key: "key123",
			check: func(t *testing.T, r *http.Request) {
				u, p, ok := r.BasicAuth()
				if !ok || u != "key123" || p != "" {
					t.Errorf("BasicAuth = %q %q %v", u, p, ok)
				}
				want := "Basic " + base64.StdEncoding.EncodeToString([]byte("key123:"))
				if r.Header.Get("Authorization") != want {
					t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
				}
			},
		},
		{
			name: "basic user:password", auth: AuthScheme{Kind: AuthBasic}, url: "/x", key: "AC1:secret",
			check: func(t *testing.T, r *http.Request) {
				if u, p, _ := r.BasicAuth(); u != "AC1" || p != "secret" {
					t.Errorf("BasicAuth = %q %q", u, p)
				}
			},
		},
		{
			name: "header", auth: AuthScheme{Kind: AuthHeader, Name: "x-api-key"},
			headers: map[string]string{"anthropic-version": "2023-06-01"},
			url:     "/v1/messages", reqHdr: http.Header{"X-Api-Key": {"client"}}, key: "sk-ant-1",
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Values("X-Api-Key"); !slices.Equal(got, []string{"sk-ant-1"}) {
					t.Errorf("x-api-key = %q", got)
				}
				if r.Header.Get("Anthropic-Version") != "2023-06-01" {
					t.Errorf("anthropic-version = %q", r.Header.Get("Anthropic-Version"))
				}
			},
		},
		{
			name: "fixed header sent by client is kept", auth: AuthScheme{Kind: AuthHeader, Name: "x-api-key"},
			headers: map[string]string{"anthropic-version": "2023-06-01"},
			url:     "/v1/messages", reqHdr: http.Header{"Anthropic-Version": {"2024-01-01"}}, key: "k",
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Values("Anthropic-Version"); !slices.Equal(got, []string{"2024-01-01"}) {
					t.Errorf("anthropic-version = %q", got)
				}
			},
		},
		{
			name: "query", auth: AuthScheme{Kind: AuthQuery, Name: "appid"},
			url: "/data/2.5/weather?q=London&appid=client&units=metric&app%69d=sneaky&appid", key: "k&y=1",
			check: func(t *testing.T, r *http.Request) {
				if r.URL.RawQuery != "q=London&units=metric&appid=k%26y%3D1" {
					t.Errorf("RawQuery = %q", r.URL.RawQuery)
				}
				if got := r.URL.Query()["appid"]; !slices.Equal(got, []string{"k&y=1"}) {
					t.Errorf("appid = %q", got)
				}
			},
		},
		{
			name: "query on empty query", auth: AuthScheme{Kind: AuthQuery, Name: "key"}, url: "/maps/api/geocode/json", key: "AIza1",
			check: func(t *testing.T, r *http.Request) {
				if r.URL.RawQuery != "key=AIza1" {
					t.Errorf("RawQuery = %q", r.URL.RawQuery)
				}
			},
		},
		{
			name: "query drops malformed escapes of the name", auth: AuthScheme{Kind: AuthQuery, Name: "key"}, url: "/x?a=1&k%zzey=2&b=3", key: "K",
			check: func(t *testing.T, r *http.Request) {
				if r.URL.RawQuery != "a=1&b=3&key=K" {
					t.Errorf("RawQuery = %q", r.URL.RawQuery)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			s.Auth, s.Headers = tt.auth, tt.headers
			c := NewEmpty()
			if err := c.Put(s); err != nil {
				t.Fatal(err)
			}
			s, _ = c.Get("acme")
			r := httptest.NewRequest("GET", "http://wallet"+tt.url, nil)
			for k, v := range tt.reqHdr {
				r.Header[k] = v
			}
			s.Inject(r, tt.key)
			tt.check(t, r)
		})
	}
}

// TestErrorBody protects SDK-readable refusals: each service's own error
// shape, with the type its SDK expects for the status.
func TestErrorBody(t *testing.T) {
	tests := []struct {
		shape  ErrorShape
		status int
		code   string
		want   string
	}{
		{ShapeStripe, 401, "invalid_api_key", `{"error":{"type":"invalid_request_error","code":"invalid_api_key","message":"m"}}`},
		{ShapeStripe, 429, "rate_limit", `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"m"}}`},
		{ShapeStripe, 503, "no_usable_key", `{"error":{"type":"api_error","code":"no_usable_key","message":"m"}}`},
		{ShapeOpenAI, 401, "invalid_api_key", `{"error":{"type":"authentication_error","code":"invalid_api_key","message":"m"}}`},
		{ShapeOpenAI, 403, "forbidden", `{"error":{"type":"permission_error","code":"forbidden","message":"m"}}`},
		{ShapeOpenAI, 429, "rate_limit_exceeded", `{"error":{"type":"rate_limit_error","code":"rate_limit_exceeded","message":"m"}}`},
		{ShapeOpenAI, 400, "invalid", `{"error":{"type":"invalid_request_error","code":"invalid","message":"m"}}`},
		{ShapeOpenAI, 502, "upstream", `{"error":{"type":"server_error","code":"upstream","message":"m"}}`},
		{ShapeAnthropic, 401, "x", `{"type":"error","error":{"type":"authentication_error","message":"m"}}`},
		{ShapeAnthropic, 402, "x", `{"type":"error","error":{"type":"billing_error","message":"m"}}`},
		{ShapeAnthropic, 403, "x", `{"type":"error","error":{"type":"permission_error","message":"m"}}`},
		{ShapeAnthropic, 404, "x", `{"type":"error","error":{"type":"not_found_error","message":"m"}}`},
		{ShapeAnthropic, 413, "x", `{"type":"error","error":{"type":"request_too_large","message":"m"}}`},
		{ShapeAnthropic, 429, "x", `{"type":"error","error":{"type":"rate_limit_error","message":"m"}}`},
		{ShapeAnthropic, 500, "x", `{"type":"error","error":{"type":"api_error","message":"m"}}`},
		{ShapeAnthropic, 503, "x", `{"type":"error","error":{"type":"overloaded_error","message":"m"}}`},
		{ShapeAnthropic, 422, "x", `{"type":"error","error":{"type":"invalid_request_error","message":"m"}}`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.shape, tt.status), func(t *testing.T) {
			s := Service{ErrorShape: tt.shape}
			b, err := json.Marshal(s.ErrorBody(tt.status, tt.code, "m"))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("ErrorBody = %s\nwant        %s", b, tt.want)
			}
		})
	}
	s := Service{}
	if b := s.ErrorBody(429, "x", "m"); b != nil {
		t.Errorf("no shape: ErrorBody = %#v, want nil", b)
	}
	if _, ok := s.ErrorMember(429, "x", "m"); ok {
		t.Error("no shape: ErrorMember ok")
	}
}

// TestConcurrentGetPut protects the lock-free read path under -race.
func TestConcurrentGetPut(t *testing.T) {
	c := New()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, ok := c.Get("stripe")
				if !ok || s.BaseURL == "" {
					t.Error("stripe vanished")
					return
				}
				_ = s.Headers["X"]
				_ = c.List()
			}
		})
	}
	for i := range 200 {
		s := valid()
		s.Name = fmt.Sprintf("svc%d", i%7)
		s.Headers = map[string]string{"X": fmt.Sprint(i)}
		if err := c.Put(s); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			_ = c.Delete(s.Name)
		}
		if i%50 == 0 {
			_ = c.ApplyEnv(map[string]string{"stripe": fmt.Sprintf("http://mock%d.test", i)})
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkGet(b *testing.B) {
	c := New()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get("openai"); !ok {
			b.Fatal("missing")
		}
	}
}

func BenchmarkInjectQuery(b *testing.B) {
	c := New()
	s, _ := c.Get("openweather")
	r := httptest.NewRequest("GET", "http://wallet/data/2.5/weather?q=London&units=metric", nil)
	raw := r.URL.RawQuery
	b.ReportAllocs()
	for b.Loop() {
		r.URL.RawQuery = raw
		s.Inject(r, "0123456789abcdef0123456789abcdef")
	}
}
