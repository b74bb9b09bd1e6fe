package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/store"
)

func exerciseDelegations(t *testing.T, open Opener) {
	ctx := context.Background()
	q := store.NewQueries(open(t))
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, ext := range []string{"a", "b", "c", "d"} {
		if err := q.DoctorUpsertProfile(ctx, doctorProfile(ext, at)); err != nil {
			t.Fatal(err)
		}
	}
	inactive := doctorProfile("d", at.Add(time.Minute))
	inactive.Active = false
	if err := q.DoctorUpsertProfile(ctx, inactive); err != nil {
		t.Fatal(err)
	}
	cover := func(id, covering string, start, end time.Time) *store.Delegation {
		return &store.Delegation{ID: id, DoctorID: "id-a", CoveringDoctorID: "id-" + covering,
			StartsAt: start, EndsAt: end, CreatedAt: at, Status: domain.CoverPending}
	}
	day := 24 * time.Hour
	running := cover("g1", "b", at.Add(-day), at.Add(day))
	future := cover("g2", "c", at.Add(2*day), at.Add(3*day))
	byInactive := cover("g3", "d", at.Add(-day), at.Add(day))
	ended := cover("g4", "b", at.Add(-3*day), at.Add(-2*day))
	for _, g := range []*store.Delegation{running, future, byInactive, ended} {
		if err := q.DelegationInsert(ctx, g); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := q.DelegationGet(ctx, &store.DelegationGetParams{ID: "nope"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
	if _, err := q.DelegationGet(ctx, &store.DelegationGetParams{ID: "g1", CoveringDoctorID: "id-c"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get asked of another doctor: %v, want ErrNotFound", err)
	}
	g, err := q.DelegationGet(ctx, &store.DelegationGetParams{ID: "g1", CoveringDoctorID: "id-b"})
	if err != nil {
		t.Fatal(err)
	}
	if g.DoctorID != "id-a" || g.CoveringDoctorID != "id-b" || !g.StartsAt.Equal(running.StartsAt) || !g.EndsAt.Equal(running.EndsAt) ||
		!g.CreatedAt.Equal(at) || g.Status != domain.CoverPending || g.DecidedAt != nil || g.DecidedBy != "" {
		t.Fatalf("get: %+v", g)
	}

	// The next cover is the running one, then, once it ends, the future one.
	if next, err := q.DelegationGetNext(ctx, &store.DelegationGetNextParams{DoctorID: "id-a", At: at}); err != nil || next.ID != "g1" {
		t.Fatalf("next now: %+v %v, want g1", next, err)
	}
	if next, err := q.DelegationGetNext(ctx, &store.DelegationGetNextParams{DoctorID: "id-a", At: at.Add(day)}); err != nil || next.ID != "g2" {
		t.Fatalf("next after the running one: %+v %v, want g2", next, err)
	}
	if _, err := q.DelegationGetNext(ctx, &store.DelegationGetNextParams{DoctorID: "id-b", At: at}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("next of a doctor without covers: %v, want ErrNotFound", err)
	}

	asked, err := q.DelegationListForCovering(ctx, &store.DelegationListForCoveringParams{CoveringDoctorID: "id-b", At: at, Limit: 10})
	if err != nil || len(asked) != 1 || asked[0].ID != "g1" {
		t.Fatalf("asked of b: %+v %v, want g1 (g4 ended)", asked, err)
	}
	if asked, err := q.DelegationListForCovering(ctx, &store.DelegationListForCoveringParams{CoveringDoctorID: "id-b", At: at.Add(-10 * day), Limit: 1}); err != nil ||
		len(asked) != 1 || asked[0].ID != "g4" {
		t.Fatalf("first asked of b long ago: %+v %v, want g4", asked, err)
	}

	live, err := q.DelegationListLive(ctx, &store.DelegationListLiveParams{DoctorID: "id-a", CoveringDoctorID: "id-b", At: at})
	if err != nil || len(live) != 1 || live[0].ID != "g1" {
		t.Fatalf("live covers of a by b: %+v %v", live, err)
	}

	// Nobody covers until a cover is accepted, and an inactive doctor never.
	covering, err := q.DoctorListCovering(ctx, &store.DoctorListCoveringParams{DoctorID: "id-a", At: at})
	if err != nil || len(covering) != 0 {
		t.Fatalf("covering before acceptance: %+v %v", covering, err)
	}
	for _, id := range []string{"g1", "g3"} {
		decided, err := q.DelegationDecide(ctx, &store.DelegationDecideParams{ID: id, From: domain.CoverPending,
			Status: domain.CoverAccepted, DecidedAt: at, DecidedBy: "doctor:x"})
		if err != nil || !decided {
			t.Fatalf("accept %s: %v %v", id, decided, err)
		}
	}
	if decided, err := q.DelegationDecide(ctx, &store.DelegationDecideParams{ID: "g1", From: domain.CoverPending,
		Status: domain.CoverDeclined, DecidedAt: at, DecidedBy: "doctor:x"}); err != nil || decided {
		t.Fatalf("decide from a status it no longer has: %v %v, want false", decided, err)
	}
	if g, err := q.DelegationGet(ctx, &store.DelegationGetParams{ID: "g1"}); err != nil || g.Status != domain.CoverAccepted ||
		g.DecidedAt == nil || !g.DecidedAt.Equal(at) || g.DecidedBy != "doctor:x" {
		t.Fatalf("accepted: %+v %v", g, err)
	}
	covering, err = q.DoctorListCovering(ctx, &store.DoctorListCoveringParams{DoctorID: "id-a", At: at})
	if err != nil || len(covering) != 1 || covering[0].ID != "id-b" || covering[0].ExternalUserID != "b" {
		t.Fatalf("covering after acceptance: %+v %v, want b only (d is inactive)", covering, err)
	}
	if covering, err := q.DoctorListCovering(ctx, &store.DoctorListCoveringParams{DoctorID: "id-a", At: at.Add(day)}); err != nil || len(covering) != 0 {
		t.Fatalf("covering when the cover ended: %+v %v", covering, err)
	}

	// Ending the current cover and removing the future ones.
	end := at.Add(time.Hour)
	if err := q.DelegationEndCurrent(ctx, &store.DelegationEndCurrentParams{DoctorID: "id-a", At: end}); err != nil {
		t.Fatal(err)
	}
	if err := q.DelegationDeleteFuture(ctx, &store.DelegationDeleteFutureParams{DoctorID: "id-a", At: end}); err != nil {
		t.Fatal(err)
	}
	if g, err := q.DelegationGet(ctx, &store.DelegationGetParams{ID: "g1"}); err != nil || !g.EndsAt.Equal(end) {
		t.Fatalf("running cover after ending it: %+v %v", g, err)
	}
	if g, err := q.DelegationGet(ctx, &store.DelegationGetParams{ID: "g4"}); err != nil || !g.EndsAt.Equal(ended.EndsAt) {
		t.Fatalf("an ended cover changed: %+v %v", g, err)
	}
	if _, err := q.DelegationGet(ctx, &store.DelegationGetParams{ID: "g2"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("future cover after removing it: %v, want ErrNotFound", err)
	}
}
