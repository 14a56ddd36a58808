package proxy

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/apikeywallet/apiwallet"
	"github.com/apikeywallet/apiwallet/internal/catalog"
	"github.com/apikeywallet/apiwallet/internal/routing"
)

// The proxy refuses a call by returning an *apiwallet.Error; internal/api
// writes it, like every other problem response of the wallet.

// refusal returns a wallet refusal: its error code, the machine reason
// clients branch on (also in the service's own error member), the problem
// type (empty: the one the code maps to) and the public message.
func refusal(code, reason, typ, msg string) *apiwallet.Error {
	return &apiwallet.Error{Code: code, Reason: reason, Type: typ, Message: msg}
}

var (
	errNoCredential = refusal(apiwallet.EUNAUTHORIZED, "missing_api_key", "",
		"no wallet credential: send a wallet access token (awk_…) or a login JWT as the API key")
	errBadCredential = refusal(apiwallet.EUNAUTHORIZED, "invalid_api_key", "", "invalid, expired or revoked wallet credential")
)

// withDetails returns a copy of e with more problem members.
func withDetails(e *apiwallet.Error, retry int, extra map[string]any) *apiwallet.Error {
	c := *e
	c.RetryAfterSeconds = retry
	c.Extra = extra
	return &c
}

// rootErrors gives the error member of refusals at the root made before
// the service is known (a bad or revoked credential, an ambiguous call):
// the {"error":{"type","code","message"}} shape that Stripe's and OpenAI's
// SDKs read, since stripe-go is the SDK that calls the root.
var rootErrors = &catalog.Service{ErrorShape: catalog.ShapeStripe}

// refuse makes err the refusal the client reads: an unauthenticated
// error of any origin is the credential refusal, and, where the service
// has an SDK error shape, the refusal carries the "error" member its SDK
// reads. Errors that are not *apiwallet.Error are internal: internal/api
// logs them and answers 500 without detail.
func refuse(svc *catalog.Service, err error) error {
	var e *apiwallet.Error
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case e.Code == apiwallet.EUNAUTHORIZED && e.Reason == "":
		e = errBadCredential
	case e.Reason == "" && e.Code == apiwallet.ENOTFOUND:
		e = refusal(apiwallet.ENOTFOUND, "not_found", "", e.Message)
	}
	if svc == nil {
		return e
	}
	m, ok := svc.ErrorMember(apiwallet.HTTPStatus(e.Code), e.Reason, e.Message)
	if !ok {
		return e
	}
	c := *e
	c.Extra = maps.Clone(e.Extra)
	if c.Extra == nil {
		c.Extra = map[string]any{}
	}
	c.Extra["error"] = m
	return &c
}

// noKey refuses a call no key could serve, saying which keys were tried or
// skipped and why (ids and reasons, never secrets).
func noKey(svc *catalog.Service, ks *routing.KeySet, tried []attempt, now time.Time) error {
	type triedJSON struct {
		KeyID  string `json:"keyId"`
		Status int    `json:"status,omitempty"`
		Reason string `json:"reason,omitempty"`
	}
	out := []triedJSON{}
	for _, a := range tried {
		out = append(out, triedJSON{KeyID: a.keyID, Status: a.status, Reason: a.reason})
	}
	skipped := ks.Explain(now, 20)
	if skipped == nil {
		skipped = []routing.Skip{} // [] in the body, as "tried" is
	}
	code, msg := apiwallet.EUNAVAILABLE, fmt.Sprintf("no usable %s key in this workspace", svc.Name)
	if len(tried) > 0 {
		code, msg = apiwallet.EUPSTREAM, fmt.Sprintf("every %s key tried failed", svc.Name)
	} else if ks.Len() == 0 && len(skipped) == 0 {
		msg = fmt.Sprintf("this workspace has no enabled %s key: add one with POST /keys", svc.Name)
	}
	retry := 0
	for _, s := range skipped {
		if !s.Until.IsZero() {
			secs := int(s.Until.Sub(now).Seconds()) + 1
			if retry == 0 || secs < retry {
				retry = secs
			}
		}
	}
	return withDetails(refusal(code, "no_usable_key", "no-usable-key", msg), retry,
		map[string]any{"tried": out, "skipped": skipped})
}
