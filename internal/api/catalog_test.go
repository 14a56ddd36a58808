package api_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/apikeywallet/apiwallet"
)

// An ADMIN's catalog edits are saved: a wallet started again on the same
// database serves them. Bad input is refused and saves nothing; a USER
// cannot edit the catalog.
func TestCatalogEditsPersist(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "wallet.db")
	ts := newTestServer(t, dsn)
	admin := ts.register("root@example.com")
	role := apiwallet.RoleAdmin
	if _, err := ts.db.UpdateUser(t.Context(), admin.ID, apiwallet.UserUpdate{Role: &role}, nil); err != nil {
		t.Fatal(err)
	}
	tok := ts.do("POST", "/auth/login", "", map[string]string{"email": admin.Email,
		"password": "correct horse battery"}).want(t, 200).JSON()["token"].(string)
	user := ts.register("user@example.com")

	svc := map[string]any{"name": "acme", "displayName": "Acme Data", "baseUrl": "https://api.acme.example",
		"auth": map[string]any{"kind": "header", "name": "x-acme-key"}, "priceMicros": 700}
	ts.do("PUT", "/admin/services/acme", user.Token, svc).want(t, http.StatusForbidden)
	ts.do("PUT", "/admin/services/acme", tok, map[string]any{"name": "acme", "baseUrl": "ftp://nope",
		"auth": map[string]any{"kind": "header", "name": "x-acme-key"}}).want(t, http.StatusBadRequest)
	ts.do("GET", "/services/acme", "", nil).want(t, http.StatusNotFound)
	ts.do("PUT", "/admin/services/acme", tok, svc).want(t, 200)
	ts.do("DELETE", "/admin/services/googlemaps", tok, nil).want(t, http.StatusNoContent)
	ts.Close()

	again := newTestServer(t, dsn)
	got := again.do("GET", "/services/acme", "", nil).want(t, 200).JSON()
	if got["baseUrl"] != "https://api.acme.example" || got["priceMicros"] != float64(700) {
		t.Fatalf("restored service: %v", got)
	}
	again.do("GET", "/services/googlemaps", "", nil).want(t, http.StatusNotFound)
	again.do("GET", "/services/stripe", "", nil).want(t, 200)
	names := map[string]bool{}
	for _, s := range again.do("GET", "/services", "", nil).want(t, 200).JSON()["services"].([]any) {
		names[s.(map[string]any)["name"].(string)] = true
	}
	if !names["acme"] || names["googlemaps"] || !names["stripe"] {
		t.Fatalf("GET /services after the edits lists %v", names)
	}
}
