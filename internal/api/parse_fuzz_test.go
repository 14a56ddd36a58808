package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/analytics"
	"github.com/apikeywallet/apiwallet/internal/proxy"
)

// The request bodies decode reads, by name: the named types, and for the
// handlers' anonymous ones, structs of the same field kinds. Each handler
// family is exercised end to end by FuzzAPIBodies on a live server.
var decodeTargets = []func() any{
	func() any { return new(proxy.Call) },
	func() any { return new(planInput) },
	func() any { return new(serviceJSON) },
	func() any {
		return &struct {
			Key      string           `json:"key"`
			Service  string           `json:"service"`
			Tier     string           `json:"tier"`
			Metadata *keyMetadataJSON `json:"metadata"`
			Label    string           `json:"label"`
			Priority int              `json:"priority"`
			Enabled  *bool            `json:"enabled"`
		}{}
	},
	func() any {
		return &struct {
			Name      string     `json:"name"`
			Services  []string   `json:"services"`
			ExpiresAt *time.Time `json:"expiresAt"`
			Rate      *int       `json:"rateLimitPerMinute"`
		}{}
	},
	func() any { return &struct{ Email, Password, Name string }{} },
}

// FuzzDecode feeds arbitrary bodies to the JSON body decoder of every
// request type. The property: no panic; either nil and a value that is
// exactly what encoding/json makes of the same body, or an EINVALID or
// ETOOLARGE error, never anything else (which would be a 500).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"service":"stripe","endpoint":"/v1/charges","method":"POST","body":{"a":1}}`,
		`{"key":"sk_test_0123456789","service":"stripe","tier":"paid","metadata":{"quota":100}}`,
		`{"name":"ci","services":["openai"],"expiresAt":"2030-01-01T00:00:00Z","rateLimitPerMinute":60}`,
		`{"id":"pro","priceMicros":9000000,"hardStop":true}`, `{}`, ``, ` `, `null`, `[]`, `"x"`, `1`,
		`{"key":1}`, `{"unknown":true}`, `{"key":"a"} {"key":"b"}`, `{"key":"a"}x`, `{"key":"a"`, `{"key":"\ud800"}`,
		`{"priority":1e400}`, `{"priority":-9223372036854775809}`, `{"expiresAt":"yesterday"}`,
		`{"Key":"case"}`, `{"key":"a","key":"b"}`, strings.Repeat("[", 10000), `{"metadata":{"quota":"x"}}`,
		"\xef\xbb\xbf{}", `{"body":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200) + `}`,
	} {
		for i := range decodeTargets {
			f.Add([]byte(s), uint8(i), "application/json")
		}
	}
	f.Add([]byte(`{}`), uint8(0), "text/plain")
	f.Add([]byte(`{}`), uint8(0), "application/problem+json; charset=utf-8")
	f.Add([]byte(`{}`), uint8(0), "application/json; charset=\"")
	const limit = 4096
	f.Fuzz(func(t *testing.T, body []byte, which uint8, contentType string) {
		mk := decodeTargets[int(which)%len(decodeTargets)]
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		dst := mk()
		err := decode(httptest.NewRecorder(), r, limit, dst)
		if err != nil {
			code := apiwallet.ErrorCode(err)
			if code != apiwallet.EINVALID && code != apiwallet.ETOOLARGE {
				t.Fatalf("decode(%q) = %v (code %q), want EINVALID or ETOOLARGE", body, err, code)
			}
			if code == apiwallet.ETOOLARGE && len(body) <= limit {
				t.Fatalf("decode(%q): %d bytes called too large", body, len(body))
			}
			return
		}
		if len(body) > limit {
			t.Fatalf("decode accepted %d bytes over a limit of %d", len(body), limit)
		}
		if !json.Valid(body) {
			t.Fatalf("decode accepted invalid JSON %q", body)
		}
		want := mk()
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(want); err != nil {
			t.Fatalf("decode accepted %q, which encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(dst, want) {
			t.Fatalf("decode(%q) = %+v, encoding/json gives %+v", body, dst, want)
		}
	})
}

// FuzzUsageParams checks GET /usage's own parsers: tz, from and to, and
// the choice of CSV. An accepted bound is a UTC time; an accepted zone is
// a real zone and never a file outside the zone database; a bad format is
// EINVALID.
func FuzzUsageParams(f *testing.F) {
	for _, s := range [][4]string{
		{"Europe/Paris", "2026-01-01", "2026-01-31", "csv"},
		{"UTC", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00+01:00", ""},
		{"America/New_York", "2026-03-08", "2026-03-08", "json"},
		{"../../../../etc/passwd", "0000-01-01", "9999-12-31", "CSV"},
		{"/etc/localtime", "2026-13-01", "2026-02-30", "xml"},
		{"Local", "2026-01-01T24:00:00Z", "-2026-01-01", "csv\x00"},
		{"Europe\\Paris", "2026-01-01T00:00:00.999999999999Z", "2026-1-1", ""},
		{"Asia/Kolkata", "2026-01-01T00:00:00+23:59", "2026-01-01T00:00:00-24:00", "json"},
		{"zone.tab", "+2026-01-01", "2026-01-01 ", ""},
		{"Europe/Paris\x00", "2026-01-01T00:00:00z", "2026-01-01t00:00:00Z", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], "text/csv;q=0.9, application/json;q=0.8")
	}
	f.Add("", "", "", "", "*/*;q=0")
	f.Add("", "", "", "", "text/*, application/json;q=1.5")
	f.Add("", "", "", "", "application/json;q=NaN, text/csv;q=1e-9")
	f.Fuzz(func(t *testing.T, tz, from, to, format, accept string) {
		loc := time.UTC
		if tz != "" {
			l, err := apiwallet.LoadTimezone(tz)
			if err != nil {
				if apiwallet.ErrorCode(err) != apiwallet.EINVALID {
					t.Fatalf("LoadTimezone(%q): %v", tz, err)
				}
			} else {
				if strings.Contains(tz, "..") || strings.HasPrefix(tz, "/") || tz == "Local" || len(tz) > 64 {
					t.Fatalf("LoadTimezone accepted %q", tz)
				}
				loc = l
			}
		}
		for i, s := range []string{from, to} {
			var v apiwallet.ValidationError
			got := parseBound(&v, "from", s, loc, i == 1)
			if v.Err() != nil {
				if !got.IsZero() {
					t.Fatalf("parseBound(%q) refused but gave %v", s, got)
				}
				continue
			}
			if got.Location() != time.UTC {
				t.Fatalf("parseBound(%q) = %v, not UTC", s, got)
			}
		}
		q := url.Values{}
		if format != "" {
			q.Set("format", format)
		}
		r := httptest.NewRequest(http.MethodGet, "/usage?"+q.Encode(), nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		isCSV, err := wantsCSV(r)
		switch {
		case err != nil:
			if format == "" || format == "csv" || format == "json" || apiwallet.ErrorCode(err) != apiwallet.EINVALID {
				t.Fatalf("wantsCSV(format %q, Accept %q): %v", format, accept, err)
			}
		case format == "csv" && !isCSV, format == "json" && isCSV:
			t.Fatalf("wantsCSV(format %q) = %v", format, isCSV)
		}
	})
}

// FuzzUsageCSV checks the CSV export of /usage with hostile group names
// and labels (a key's label is the user's text): the file parses back to
// one row per group, every text cell is the text given, and none can be
// read by a spreadsheet as a formula.
func FuzzUsageCSV(f *testing.F) {
	f.Add("key_1", "=HYPERLINK(\"http://evil.example\",\"x\")", "stripe")
	f.Add("+1", "-2", "@SUM(A1)")
	f.Add("\tcell", "\r\nnext,row", "\"quoted\"")
	f.Add("", "", "a\x00b")
	f.Add("'=already", "é", "\xff\xfe")
	f.Fuzz(func(t *testing.T, g1, label, g2 string) {
		rep := &analytics.Report{GroupBy: analytics.GroupKey, Rows: []analytics.Row{
			{Group: g1, Label: label, Figures: analytics.Figures{Calls: 3, CostMicros: -5}},
			{Group: g2, Label: g1},
		}}
		w := httptest.NewRecorder()
		if err := writeUsageCSV(w, rep); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(w.Body.Bytes())).ReadAll()
		if err != nil {
			t.Fatalf("the CSV does not parse: %v\n%s", err, w.Body.Bytes())
		}
		if len(recs) != 3 || !reflect.DeepEqual(recs[0], usageCSVHeader) {
			t.Fatalf("CSV has %d records (header %q), want a header and 2 rows", len(recs), recs[0])
		}
		for i, row := range rep.Rows {
			rec := recs[i+1]
			for j, text := range []string{row.Group, row.Label} {
				cell := rec[j]
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Fatalf("cell %q could be read as a formula", cell)
				}
				// encoding/csv reads \r\n inside quotes as \n.
				want := strings.ReplaceAll(csvText(text), "\r\n", "\n")
				if cell != want {
					t.Fatalf("cell %q, want %q", cell, want)
				}
			}
		}
	})
}
