package api

import (
	"encoding/json"
	"net/http"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/proxy"
)

// proxyCall serves POST /proxy, the seed's JSON form of a proxied call.
func (s *Server) proxyCall(w http.ResponseWriter, r *http.Request) error {
	if s.Proxy == nil {
		return apiwallet.Errorf(apiwallet.ENOTFOUND, "proxying is not enabled")
	}
	var call proxy.Call
	if err := decode(w, r, s.cfg.MaxBodyBytes, &call); err != nil {
		return err
	}
	esc, query, err := call.Validate()
	if err != nil {
		return err
	}
	return s.Proxy.ServeCall(w, r, &call, esc, query)
}

// serviceJSON is a catalog entry as the API shows it.
type serviceJSON = catalog.Service

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{"services": s.Catalog.List()})
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) error {
	svc, ok := s.Catalog.Get(r.PathValue("name"))
	if !ok {
		return apiwallet.Errorf(apiwallet.ENOTFOUND, "service not found")
	}
	return writeJSON(w, http.StatusOK, svc)
}

func requireAdmin(p *Principal) error {
	if p.User.Role != apiwallet.RoleAdmin {
		return apiwallet.Errorf(apiwallet.EFORBIDDEN, "only a wallet ADMIN can do this")
	}
	return nil
}

// adminPutService adds a service to the catalog or replaces one.
func (s *Server) adminPutService(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := requireAdmin(p); err != nil {
		return err
	}
	var in serviceJSON
	if err := decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	if in.Name == "" {
		in.Name = r.PathValue("name")
	}
	if in.Name != r.PathValue("name") {
		return &apiwallet.Error{Code: apiwallet.EINVALID, Message: "the request has invalid fields",
			Fields: []apiwallet.FieldError{{Field: "name", Detail: "must match the name in the path"}}}
	}
	if err := catalog.SavePut(r.Context(), s.CatalogStore, s.Catalog, in, p.auditEvent(r, "service.put", "service", in.Name)); err != nil {
		return err
	}
	svc, _ := s.Catalog.Get(in.Name)
	b, _ := json.Marshal(svc)
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(b)
	return err
}

func (s *Server) adminDeleteService(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := requireAdmin(p); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := catalog.SaveDelete(r.Context(), s.CatalogStore, s.Catalog, name, p.auditEvent(r, "service.delete", "service", name)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
