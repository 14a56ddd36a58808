package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apikeywallet/apiwallet"
)

// The store sees only sealed blobs and fingerprints: these tests use
// stand-ins, and internal/vault's tests cover the real cryptography on top.

func newTestKey(ws, service string, n int) *apiwallet.Key {
	q := int64(1000 * n)
	return &apiwallet.Key{
		ID: apiwallet.NewID("key"), WorkspaceID: ws, Service: service, Tier: apiwallet.TierFree,
		Metadata: apiwallet.KeyMetadata{Type: "payment", Quota: &q, Description: "test key"},
		Enabled:  true, Sealed: []byte(fmt.Sprintf("sealed-%d", n)),
		Fingerprint: fmt.Sprintf("fp-%s-%d", ws, n), Masked: "sk_…" + fmt.Sprint(1000+n), CreatedBy: "usr_test",
	}
}

func mustCreateKey(t *testing.T, s Store, k *apiwallet.Key) *apiwallet.Key {
	t.Helper()
	if err := s.CreateKey(context.Background(), k, 0, nil); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return k
}

// testKeys gives each part a fresh store: the root key record is global.
func testKeys(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("CRUD", func(t *testing.T) { testKeyCRUD(t, newStore(t)) })
	t.Run("Ownership", func(t *testing.T) { testKeyOwnership(t, newStore(t)) })
	t.Run("DataKeys", func(t *testing.T) { testDataKeys(t, newStore(t)) })
	t.Run("RootRotation", func(t *testing.T) { testRootRotation(t, newStore(t)) })
	t.Run("RotationVersusCreation", func(t *testing.T) { testRotationVersusCreation(t, newStore(t)) })
	t.Run("SetVersion", func(t *testing.T) { testKeySetVersion(t, newStore(t)) })
}

// Every change to a workspace's keys for a service moves its set version,
// in the same commit; using a key does not, and neither does a change to
// another service's or another workspace's keys.
func testKeySetVersion(t *testing.T, s Store) {
	ctx := context.Background()
	u := MustCreateUser(t, s, "keys-version@example.com")
	ws := u.PersonalWorkspaceID
	other := MustCreateUser(t, s, "keys-version-other@example.com").PersonalWorkspaceID
	version := func(ws, service string) int64 {
		t.Helper()
		v, err := s.KeySetVersion(ctx, ws, service)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := version(ws, "stripe"); v != 0 {
		t.Fatalf("version before any key = %d, want 0", v)
	}
	last := int64(0)
	moved := func(what string) {
		t.Helper()
		v := version(ws, "stripe")
		if v <= last {
			t.Fatalf("after %s: version %d, was %d", what, v, last)
		}
		last = v
	}
	still := func(what string) {
		t.Helper()
		if v := version(ws, "stripe"); v != last {
			t.Fatalf("after %s: version %d, want it unchanged at %d", what, v, last)
		}
	}

	k := mustCreateKey(t, s, newTestKey(ws, "stripe", 1))
	moved("CreateKey")
	second := mustCreateKey(t, s, newTestKey(ws, "stripe", 2))
	moved("a second CreateKey")
	if err := s.TouchKey(ctx, ws, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	still("TouchKey")
	mustCreateKey(t, s, newTestKey(ws, "openai", 3))
	mustCreateKey(t, s, newTestKey(other, "stripe", 4))
	still("CreateKey for another service and another workspace")
	if v := version(ws, "openai"); v == 0 {
		t.Fatal("another service's version did not move on its CreateKey")
	}

	disabled, prio := false, 7
	if _, err := s.UpdateKey(ctx, ws, k.ID, apiwallet.KeyUpdate{Enabled: &disabled}, nil); err != nil {
		t.Fatal(err)
	}
	moved("UpdateKey (disable)")
	if _, err := s.UpdateKey(ctx, ws, k.ID, apiwallet.KeyUpdate{Priority: &prio}, nil); err != nil {
		t.Fatal(err)
	}
	moved("UpdateKey (priority)")
	rot := apiwallet.KeyRotation{Sealed: []byte("sealed-v2"), Fingerprint: "fp-version-v2", Masked: "sk_…v2"}
	if _, err := s.RotateKey(ctx, ws, k.ID, rot, nil); err != nil {
		t.Fatal(err)
	}
	moved("RotateKey")

	// Failed changes commit nothing, so they move nothing.
	_, err := s.UpdateKey(ctx, other, k.ID, apiwallet.KeyUpdate{Priority: &prio}, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	wantCode(t, s.DeleteKey(ctx, other, k.ID, nil), apiwallet.ENOTFOUND)
	still("changes refused for another workspace")

	if err := s.DeleteKey(ctx, ws, second.ID, nil); err != nil {
		t.Fatal(err)
	}
	moved("DeleteKey")
	mustInitRoot(t, s, 1)
	if _, err := s.CreateDataKey(ctx, &apiwallet.DataKey{WorkspaceID: ws, Wrapped: []byte("w"), RootVersion: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyDataKey(ctx, ws, nil); err != nil {
		t.Fatal(err)
	}
	moved("DestroyDataKey, which deletes the keys it sealed")
	mustCreateKey(t, s, newTestKey(ws, "stripe", 5))
	moved("CreateKey after every key was gone")
}

func testKeyCRUD(t *testing.T, s Store) {
	ctx := context.Background()
	u := MustCreateUser(t, s, "keys-crud@example.com")
	ws := u.PersonalWorkspaceID

	// Create fills times and defaults, records the event, and reads back
	// field for field (a nil quota stays nil).
	k := newTestKey(ws, "stripe", 1)
	ev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, u.ID, "key.create", "key", "")
	if err := s.CreateKey(ctx, k, 0, ev); err != nil {
		t.Fatal(err)
	}
	if k.CreatedAt.IsZero() || k.Version != 1 || k.Status != apiwallet.KeyActive {
		t.Fatalf("CreateKey did not fill defaults: %+v", k)
	}
	if ev.TargetID != k.ID || ev.Details["service"] != "stripe" || ev.Details["tier"] != "free" || ev.Seq == 0 {
		t.Fatalf("create event: %+v", ev)
	}
	got, err := s.FindKeyByID(ctx, ws, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Service != "stripe" || got.Tier != apiwallet.TierFree || *got.Metadata.Quota != 1000 ||
		got.Metadata.Type != "payment" || !bytes.Equal(got.Sealed, k.Sealed) || got.Fingerprint != k.Fingerprint ||
		got.Masked != k.Masked || !got.Enabled || !got.CreatedAt.Equal(k.CreatedAt) || !got.LastUsedAt.IsZero() {
		t.Fatalf("FindKeyByID = %+v, want %+v", got, k)
	}
	noQuota := newTestKey(ws, "openai", 2)
	noQuota.Metadata.Quota = nil
	mustCreateKey(t, s, noQuota)
	if got, _ := s.FindKeyByID(ctx, ws, noQuota.ID); got.Metadata.Quota != nil {
		t.Fatalf("nil quota read back as %d", *got.Metadata.Quota)
	}

	// The same fingerprint twice in one workspace is a conflict naming the
	// holder, and stores nothing.
	dup := newTestKey(ws, "stripe", 3)
	dup.Fingerprint = k.Fingerprint
	err = s.CreateKey(ctx, dup, 0, nil)
	wantCode(t, err, apiwallet.ECONFLICT)
	if !strings.Contains(apiwallet.ErrorMessage(err), k.ID) {
		t.Fatalf("conflict %q does not name %s", apiwallet.ErrorMessage(err), k.ID)
	}
	_, err = s.FindKeyByID(ctx, ws, dup.ID)
	wantCode(t, err, apiwallet.ENOTFOUND)

	// ReadKey records the read; a missing key records nothing.
	rev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, u.ID, "key.read", "key", k.ID)
	if got, err := s.ReadKey(ctx, ws, k.ID, rev); err != nil || got.ID != k.ID || rev.Seq == 0 {
		t.Fatalf("ReadKey = %v, %v (event seq %d)", got, err, rev.Seq)
	}
	missing := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, u.ID, "key.read", "key", "key_missing")
	_, err = s.ReadKey(ctx, ws, "key_missing", missing)
	wantCode(t, err, apiwallet.ENOTFOUND)
	if missing.Seq != 0 {
		t.Fatal("ReadKey of a missing key recorded an event")
	}

	// Listing: filters and ID-cursor paging.
	for i := 4; i < 9; i++ {
		k := newTestKey(ws, "stripe", i)
		if i%2 == 0 {
			k.Tier = apiwallet.TierPaid
		}
		mustCreateKey(t, s, k)
	}
	all, err := s.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: ws})
	if err != nil || len(all) != 7 {
		t.Fatalf("FindKeys = %d, %v; want 7", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatal("FindKeys is not ordered by ID")
		}
	}
	stripe, _ := s.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: ws, Service: "stripe"})
	paid, _ := s.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: ws, Service: "stripe", Tier: apiwallet.TierPaid})
	if len(stripe) != 6 || len(paid) != 3 {
		t.Fatalf("filters: stripe %d (want 6), stripe paid %d (want 3)", len(stripe), len(paid))
	}
	page1, _ := s.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: ws, Limit: 4})
	page2, _ := s.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: ws, Limit: 4, After: page1[3].ID})
	if len(page1) != 4 || len(page2) != 3 || page2[0].ID != all[4].ID {
		t.Fatalf("paging: %d then %d", len(page1), len(page2))
	}

	// Update changes only what it names and records which fields.
	tier, disabled, prio, label := apiwallet.TierPaid, false, 7, "prod"
	meta := apiwallet.KeyMetadata{Type: "x", Description: "replaced"}
	uev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, u.ID, "key.update", "key", k.ID)
	upd, err := s.UpdateKey(ctx, ws, k.ID, apiwallet.KeyUpdate{Tier: &tier, Enabled: &disabled, Priority: &prio,
		Label: &label, Metadata: &meta}, uev)
	if err != nil {
		t.Fatal(err)
	}
	if upd.Tier != tier || upd.Enabled || upd.Priority != 7 || upd.Label != "prod" || upd.Metadata.Quota != nil ||
		upd.Metadata.Description != "replaced" || upd.Fingerprint != k.Fingerprint || upd.DisplayStatus() != apiwallet.KeyDisabled {
		t.Fatalf("UpdateKey = %+v", upd)
	}
	if uev.Details["fields"] != "tier,metadata,enabled,priority,label" {
		t.Fatalf("update event fields = %q", uev.Details["fields"])
	}
	got, _ = s.FindKeyByID(ctx, ws, k.ID)
	if got.Tier != tier || got.Enabled || got.Label != "prod" || !got.UpdatedAt.Equal(upd.UpdatedAt) {
		t.Fatalf("after update: %+v", got)
	}
	enabled := true
	on, _ := s.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: ws, Enabled: &enabled})
	if len(on) != 6 {
		t.Fatalf("enabled filter: %d, want 6", len(on))
	}

	// Rotation replaces the secret under the same ID and bumps the version;
	// the current secret or another key's is a conflict.
	rot := apiwallet.KeyRotation{Sealed: []byte("sealed-new"), Fingerprint: "fp-new", Masked: "sk_…new1"}
	rotated, err := s.RotateKey(ctx, ws, k.ID, rot, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ID != k.ID || rotated.Version != 2 || rotated.RotatedAt.IsZero() || rotated.Label != "prod" {
		t.Fatalf("RotateKey = %+v", rotated)
	}
	got, _ = s.FindKeyByID(ctx, ws, k.ID)
	if !bytes.Equal(got.Sealed, rot.Sealed) || got.Fingerprint != "fp-new" || got.Masked != rot.Masked || got.Version != 2 ||
		!got.RotatedAt.Equal(rotated.RotatedAt) {
		t.Fatalf("after rotate: %+v", got)
	}
	_, err = s.RotateKey(ctx, ws, k.ID, rot, nil)
	wantCode(t, err, apiwallet.ECONFLICT)
	_, err = s.RotateKey(ctx, ws, k.ID, apiwallet.KeyRotation{Sealed: []byte("s"), Fingerprint: noQuota.Fingerprint, Masked: "m"}, nil)
	wantCode(t, err, apiwallet.ECONFLICT)
	_, err = s.RotateKey(ctx, ws, "key_missing", apiwallet.KeyRotation{Sealed: []byte("s"), Fingerprint: "fp-x", Masked: "m"}, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)

	// TouchKey only moves forward.
	t1 := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.TouchKey(ctx, ws, k.ID, t1); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchKey(ctx, ws, k.ID, t1.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.FindKeyByID(ctx, ws, k.ID); !got.LastUsedAt.Equal(t1) {
		t.Fatalf("LastUsedAt = %v, want %v", got.LastUsedAt, t1)
	}
	wantCode(t, s.TouchKey(ctx, ws, "key_missing", t1), apiwallet.ENOTFOUND)

	// Delete, then it is gone; deleting again is ENOTFOUND.
	dev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, u.ID, "key.delete", "key", k.ID)
	if err := s.DeleteKey(ctx, ws, k.ID, dev); err != nil {
		t.Fatal(err)
	}
	if dev.Details["service"] != "stripe" || dev.Seq == 0 {
		t.Fatalf("delete event: %+v", dev)
	}
	_, err = s.FindKeyByID(ctx, ws, k.ID)
	wantCode(t, err, apiwallet.ENOTFOUND)
	wantCode(t, s.DeleteKey(ctx, ws, k.ID, nil), apiwallet.ENOTFOUND)
	// Its fingerprint is free again.
	again := newTestKey(ws, "stripe", 99)
	again.Fingerprint = "fp-new"
	mustCreateKey(t, s, again)

	if n, err := s.VerifyAudit(ctx); err != nil || n == 0 {
		t.Fatalf("VerifyAudit = %d, %v", n, err)
	}
}

// Guarantee: every method that takes a key ID is scoped to the workspace it
// names: another workspace's key is ENOTFOUND, exactly like a missing one,
// and nothing about it changes.
func testKeyOwnership(t *testing.T, s Store) {
	ctx := context.Background()
	a := MustCreateUser(t, s, "keys-owner-a@example.com")
	b := MustCreateUser(t, s, "keys-owner-b@example.com")
	ka := mustCreateKey(t, s, newTestKey(a.PersonalWorkspaceID, "stripe", 1))
	before, _ := s.FindKeyByID(ctx, a.PersonalWorkspaceID, ka.ID)
	wsB := b.PersonalWorkspaceID

	// The same fingerprint in another workspace is no conflict.
	other := newTestKey(wsB, "stripe", 1)
	other.Fingerprint = ka.Fingerprint
	mustCreateKey(t, s, other)

	_, err := s.FindKeyByID(ctx, wsB, ka.ID)
	wantCode(t, err, apiwallet.ENOTFOUND)
	ev := apiwallet.NewAuditEvent(ctx, wsB, apiwallet.ActorUser, b.ID, "key.read", "key", ka.ID)
	_, err = s.ReadKey(ctx, wsB, ka.ID, ev)
	wantCode(t, err, apiwallet.ENOTFOUND)
	tier := apiwallet.TierPaid
	_, err = s.UpdateKey(ctx, wsB, ka.ID, apiwallet.KeyUpdate{Tier: &tier}, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	_, err = s.RotateKey(ctx, wsB, ka.ID, apiwallet.KeyRotation{Sealed: []byte("x"), Fingerprint: "fp-x", Masked: "m"}, nil)
	wantCode(t, err, apiwallet.ENOTFOUND)
	wantCode(t, s.TouchKey(ctx, wsB, ka.ID, time.Now()), apiwallet.ENOTFOUND)
	wantCode(t, s.DeleteKey(ctx, wsB, ka.ID, nil), apiwallet.ENOTFOUND)
	list, _ := s.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: wsB})
	if len(list) != 1 || list[0].ID != other.ID {
		t.Fatalf("workspace B lists %d keys", len(list))
	}

	after, err := s.FindKeyByID(ctx, a.PersonalWorkspaceID, ka.ID)
	if err != nil || after.Tier != before.Tier || !bytes.Equal(after.Sealed, before.Sealed) ||
		!after.UpdatedAt.Equal(before.UpdatedAt) || !after.LastUsedAt.IsZero() || after.Version != 1 {
		t.Fatalf("key changed by another workspace: %+v, %v", after, err)
	}
	evs, _ := s.FindAuditEvents(ctx, apiwallet.AuditFilter{WorkspaceID: wsB})
	if len(evs) != 0 {
		t.Fatalf("failed cross-workspace calls recorded %d events", len(evs))
	}
}

func mustInitRoot(t *testing.T, s Store, version int) *apiwallet.RootKey {
	t.Helper()
	rk, err := s.InitRootKey(context.Background(), &apiwallet.RootKey{Version: version, Check: []byte(fmt.Sprintf("check-v%d", version))})
	if err != nil {
		t.Fatalf("InitRootKey: %v", err)
	}
	return rk
}

func testDataKeys(t *testing.T, s Store) {
	ctx := context.Background()
	_, err := s.FindRootKey(ctx)
	wantCode(t, err, apiwallet.ENOTFOUND)
	u := MustCreateUser(t, s, "datakeys@example.com")
	ws := u.PersonalWorkspaceID

	// Without a root record no data key can be created.
	if _, err := s.CreateDataKey(ctx, &apiwallet.DataKey{WorkspaceID: ws, Wrapped: []byte("w"), RootVersion: 1}); err == nil {
		t.Fatal("CreateDataKey succeeded before InitRootKey")
	}

	// InitRootKey keeps the first record.
	rk := mustInitRoot(t, s, 1)
	if rk.Version != 1 || string(rk.Check) != "check-v1" || rk.CreatedAt.IsZero() {
		t.Fatalf("InitRootKey = %+v", rk)
	}
	rk2, err := s.InitRootKey(ctx, &apiwallet.RootKey{Version: 5, Check: []byte("other")})
	if err != nil || rk2.Version != 1 || string(rk2.Check) != "check-v1" {
		t.Fatalf("second InitRootKey = %+v, %v; want the first kept", rk2, err)
	}

	_, err = s.FindDataKey(ctx, ws)
	wantCode(t, err, apiwallet.ENOTFOUND)

	// Concurrent first keys of one workspace agree on a single data key.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dk, err := s.CreateDataKey(ctx, &apiwallet.DataKey{WorkspaceID: ws, Wrapped: []byte(fmt.Sprintf("wrapped-%d", i)), RootVersion: 1})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[string(dk.Wrapped)] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 1 {
		t.Fatalf("concurrent CreateDataKey returned %d different keys", len(seen))
	}
	dk, err := s.FindDataKey(ctx, ws)
	if err != nil || !seen[string(dk.Wrapped)] || dk.RootVersion != 1 {
		t.Fatalf("FindDataKey = %+v, %v", dk, err)
	}

	// A data key wrapped under a root other than the current one is refused.
	v := MustCreateUser(t, s, "datakeys-2@example.com")
	if _, err := s.CreateDataKey(ctx, &apiwallet.DataKey{WorkspaceID: v.PersonalWorkspaceID, Wrapped: []byte("w"), RootVersion: 2}); err == nil {
		t.Fatal("CreateDataKey accepted a stale root version")
	}

	// Destroying the data key takes the workspace's keys with it.
	mustCreateKey(t, s, newTestKey(ws, "stripe", 1))
	ev := apiwallet.NewAuditEvent(ctx, ws, apiwallet.ActorUser, u.ID, "workspace.shred", "workspace", ws)
	if err := s.DestroyDataKey(ctx, ws, ev); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindDataKey(ctx, ws)
	wantCode(t, err, apiwallet.ENOTFOUND)
	if keys, _ := s.FindKeys(ctx, apiwallet.KeyFilter{WorkspaceID: ws}); len(keys) != 0 {
		t.Fatalf("%d keys survived DestroyDataKey", len(keys))
	}
	if err := s.DestroyDataKey(ctx, ws, nil); err != nil {
		t.Fatalf("destroying a missing data key: %v", err)
	}
}

func testRootRotation(t *testing.T, s Store) {
	ctx := context.Background()
	mustInitRoot(t, s, 1)
	var wss []string
	for i := range 5 {
		u := MustCreateUser(t, s, fmt.Sprintf("rotate-%d@example.com", i))
		wss = append(wss, u.PersonalWorkspaceID)
		if _, err := s.CreateDataKey(ctx, &apiwallet.DataKey{WorkspaceID: u.PersonalWorkspaceID, Wrapped: []byte("v1:" + u.PersonalWorkspaceID), RootVersion: 1}); err != nil {
			t.Fatal(err)
		}
		mustCreateKey(t, s, newTestKey(u.PersonalWorkspaceID, "stripe", i))
	}
	rewrap := func(dk *apiwallet.DataKey) ([]byte, error) {
		return []byte("v2:" + strings.TrimPrefix(string(dk.Wrapped), "v1:")), nil
	}

	// A failing rewrap changes nothing at all.
	calls := 0
	_, err := s.RotateRootKey(ctx, 1, &apiwallet.RootKey{Version: 2, Check: []byte("check-v2")}, func(dk *apiwallet.DataKey) ([]byte, error) {
		if calls++; calls == 3 {
			return nil, errors.New("boom")
		}
		return rewrap(dk)
	}, nil)
	if err == nil {
		t.Fatal("RotateRootKey ignored a rewrap failure")
	}
	if rk, _ := s.FindRootKey(ctx); rk.Version != 1 || string(rk.Check) != "check-v1" {
		t.Fatalf("failed rotation changed the root record: %+v", rk)
	}
	for _, ws := range wss {
		if dk, _ := s.FindDataKey(ctx, ws); dk.RootVersion != 1 || string(dk.Wrapped) != "v1:"+ws {
			t.Fatalf("failed rotation changed a data key: %+v", dk)
		}
	}

	// A rotation from the wrong version is a conflict.
	_, err = s.RotateRootKey(ctx, 7, &apiwallet.RootKey{Version: 8, Check: []byte("c")}, rewrap, nil)
	wantCode(t, err, apiwallet.ECONFLICT)

	ev := apiwallet.NewAuditEvent(ctx, "", apiwallet.ActorSystem, "", "vault.rotate_root", "", "")
	res, err := s.RotateRootKey(ctx, 1, &apiwallet.RootKey{Version: 2, Check: []byte("check-v2")}, rewrap, ev)
	if err != nil {
		t.Fatal(err)
	}
	if res.FromVersion != 1 || res.ToVersion != 2 || res.DataKeys != 5 || res.Keys != 5 {
		t.Fatalf("RotateRootKey = %+v", res)
	}
	if ev.Seq == 0 || ev.Details["data_keys"] != "5" || ev.TargetID != "2" {
		t.Fatalf("rotation event: %+v", ev)
	}
	rk, _ := s.FindRootKey(ctx)
	if rk.Version != 2 || string(rk.Check) != "check-v2" || rk.RotatedAt.IsZero() {
		t.Fatalf("root after rotation: %+v", rk)
	}
	for _, ws := range wss {
		if dk, _ := s.FindDataKey(ctx, ws); dk.RootVersion != 2 || string(dk.Wrapped) != "v2:"+ws {
			t.Fatalf("data key after rotation: %+v", dk)
		}
	}
	// Running the same rotation again is refused, not applied twice.
	_, err = s.RotateRootKey(ctx, 1, &apiwallet.RootKey{Version: 2, Check: []byte("c")}, rewrap, nil)
	wantCode(t, err, apiwallet.ECONFLICT)
}

// Guarantee: a master-key rotation and data keys created while it runs
// never interleave so that a data key is left wrapped under the retired
// root: each creation either commits before the rotation reads the data
// keys (and is rewrapped) or fails and leaves nothing.
func testRotationVersusCreation(t *testing.T, s Store) {
	ctx := context.Background()
	mustInitRoot(t, s, 1)
	var existing, fresh []string
	for i := range 30 {
		u := MustCreateUser(t, s, fmt.Sprintf("race-%d@example.com", i))
		if i < 15 {
			existing = append(existing, u.PersonalWorkspaceID)
			if _, err := s.CreateDataKey(ctx, &apiwallet.DataKey{WorkspaceID: u.PersonalWorkspaceID, Wrapped: []byte("v1"), RootVersion: 1}); err != nil {
				t.Fatal(err)
			}
		} else {
			fresh = append(fresh, u.PersonalWorkspaceID)
		}
	}
	// Everything starts at once, so some creations land before the
	// rotation takes its lock and some during it.
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		_, err := s.RotateRootKey(ctx, 1, &apiwallet.RootKey{Version: 2, Check: []byte("c2")}, func(dk *apiwallet.DataKey) ([]byte, error) {
			time.Sleep(time.Millisecond) // widen the window for the creators
			return []byte("v2"), nil
		}, nil)
		if err != nil {
			t.Error(err)
		}
	}()
	for _, ws := range fresh {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Refused (the root moved on) or rewrapped: both are fine.
			_, _ = s.CreateDataKey(ctx, &apiwallet.DataKey{WorkspaceID: ws, Wrapped: []byte("v1"), RootVersion: 1})
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for _, ws := range append(existing, fresh...) {
		dk, err := s.FindDataKey(ctx, ws)
		if apiwallet.ErrorCode(err) == apiwallet.ENOTFOUND {
			continue
		}
		created++
		if err != nil || dk.RootVersion != 2 || string(dk.Wrapped) != "v2" {
			t.Fatalf("data key of %s after the race: %+v, %v", ws, dk, err)
		}
	}
	t.Logf("%d of %d data keys created during the rotation got in before it", created-len(existing), len(fresh))
}
