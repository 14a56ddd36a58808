package api

import (
	"context"
	"net/http"
	"time"
)

// health answers in the seed's exact shape. The database decides healthy or
// not; Redis being down degrades limits to per-instance but keeps serving,
// so it is reported without failing the check.
func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	type services struct {
		Database string `json:"database"`
		Redis    string `json:"redis"`
	}
	out := struct {
		Status    string   `json:"status"`
		Timestamp string   `json:"timestamp"`
		Services  services `json:"services"`
	}{Status: "healthy", Timestamp: s.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Services: services{Database: "connected", Redis: "not configured"}}
	status := http.StatusOK
	if err := s.DB.Ping(ctx); err != nil {
		out.Status, out.Services.Database, status = "unhealthy", "disconnected", http.StatusServiceUnavailable
		s.log.WarnContext(ctx, "health: database unreachable", "err", err)
	}
	if s.Redis != nil {
		out.Services.Redis = "connected"
		if err := s.Redis.Ping(ctx); err != nil {
			out.Services.Redis = "disconnected"
		}
	}
	return writeJSON(w, status, out)
}
