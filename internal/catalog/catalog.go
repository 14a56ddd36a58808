package catalog

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apikeywallet/apiwallet"
)

// Catalog is the concurrency-safe set of services. Readers never lock;
// writers are serialised and publish a new immutable view.
type Catalog struct {
	mu  sync.Mutex // serialises writers
	cur atomic.Pointer[view]
}

// view is one immutable state of the catalog.
type view struct {
	admin map[string]Service // as admins configured it (persisted)
	env   map[string]string  // <SERVICE>_BASE_URL by lower-case env name
	eff   map[string]Service // admin with env applied (served)
	list  []Service          // eff sorted by name
}

// New returns a catalog holding Defaults.
func New() *Catalog {
	c := NewEmpty()
	if err := c.Load(Defaults()); err != nil {
		panic(fmt.Sprintf("catalog: invalid defaults: %v", err))
	}
	return c
}

// NewEmpty returns a catalog with no services.
func NewEmpty() *Catalog {
	c := &Catalog{}
	c.cur.Store(build(map[string]Service{}, map[string]string{}))
	return c
}

// build derives the served maps from the two layers.
func build(admin map[string]Service, env map[string]string) *view {
	v := &view{admin: admin, env: env, eff: make(map[string]Service, len(admin))}
	for name, s := range admin {
		if raw, ok := env[envKey(name)]; ok {
			if u, err := parseBaseURL(raw); err == nil {
				s.BaseURL, s.base, s.BaseURLFromEnv = u.String(), u, true
			}
		}
		v.eff[name] = s
	}
	v.list = slices.SortedFunc(maps.Values(v.eff), func(a, b Service) int { return cmp.Compare(a.Name, b.Name) })
	return v
}

// Get returns the effective service called name. Its maps and slices are
// shared: do not modify them.
func (c *Catalog) Get(name string) (Service, bool) {
	s, ok := c.cur.Load().eff[name]
	if !ok && strings.ContainsFunc(name, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
		s, ok = c.cur.Load().eff[strings.ToLower(name)]
	}
	return s, ok
}

// List returns the effective services sorted by name.
func (c *Catalog) List() []Service {
	return slices.Clone(c.cur.Load().list)
}

// Len returns the number of services.
func (c *Catalog) Len() int { return len(c.cur.Load().eff) }

// envKey is the key of name in the environment layer.
func envKey(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Put adds or replaces a service after validating it. It returns an
// EINVALID *apiwallet.Error naming each bad field, and changes nothing then.
// A BaseURL equal to the service's <SERVICE>_BASE_URL override (a service
// read back from Get and edited) leaves the configured base URL as it was.
func (c *Catalog) Put(s Service) error {
	n, err := s.normalized()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cur.Load()
	if prev, ok := old.admin[n.Name]; ok && old.env[envKey(n.Name)] == n.BaseURL {
		// n came from Get while <SERVICE>_BASE_URL overrides it: keep the
		// configured URL, so the override is never persisted.
		n.BaseURL, n.base = prev.BaseURL, prev.base
	}
	admin := maps.Clone(old.admin)
	admin[n.Name] = n
	c.cur.Store(build(admin, old.env))
	return nil
}

// Delete removes a service. It returns ENOTFOUND if there is none.
func (c *Catalog) Delete(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cur.Load()
	if _, ok := old.admin[name]; !ok {
		return apiwallet.Errorf(apiwallet.ENOTFOUND, "service %q not found", name)
	}
	admin := maps.Clone(old.admin)
	delete(admin, name)
	c.cur.Store(build(admin, old.env))
	return nil
}

// Snapshot returns the admin layer, the services as admins configured them
// without environment overrides, sorted by name: what to persist.
func (c *Catalog) Snapshot() []Service {
	admin := c.cur.Load().admin
	out := make([]Service, 0, len(admin))
	for _, s := range admin {
		s.Headers = maps.Clone(s.Headers)
		s.KeyPrefixes = slices.Clone(s.KeyPrefixes)
		s.base = nil
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Service) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Load replaces the admin layer with services, typically a persisted
// Snapshot; environment overrides stay. All services are validated first:
// on error (EINVALID, fields prefixed "services[i]."; or a name given
// twice) nothing changes. Call it only when something was saved, so that
// a first start keeps New's defaults.
func (c *Catalog) Load(services []Service) error {
	admin := make(map[string]Service, len(services))
	var v apiwallet.ValidationError
	for i, s := range services {
		n, err := s.normalized()
		if err != nil {
			var e *apiwallet.Error
			if errors.As(err, &e) {
				for _, f := range e.Fields {
					v.Add(fmt.Sprintf("services[%d].%s", i, f.Field), f.Detail)
				}
			}
			continue
		}
		if _, dup := admin[n.Name]; dup {
			v.Add(fmt.Sprintf("services[%d].name", i), "is given twice")
			continue
		}
		admin[n.Name] = n
	}
	if err := v.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur.Store(build(admin, c.cur.Load().env))
	return nil
}

// ApplyEnv sets the environment layer: baseURLs maps a service name in
// lower case, as in <SERVICE>_BASE_URL ('_' for '-'), to a base URL that
// overrides the admin-configured one, also for services added later. It
// replaces any earlier environment layer. A URL that would not pass Put's
// validation is refused (EINVALID, field named after the variable) and
// nothing changes.
func (c *Catalog) ApplyEnv(baseURLs map[string]string) error {
	env := make(map[string]string, len(baseURLs))
	var v apiwallet.ValidationError
	for _, name := range slices.Sorted(maps.Keys(baseURLs)) {
		u, err := parseBaseURL(baseURLs[name])
		if err != nil {
			v.Add(strings.ToUpper(name)+"_BASE_URL", err.Error())
			continue
		}
		env[envKey(strings.ToLower(name))] = u.String()
	}
	if err := v.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur.Store(build(c.cur.Load().admin, env))
	return nil
}
