package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/store"
)

func exercisePreferences(t *testing.T, open Opener) {
	ctx := context.Background()
	q := store.NewQueries(open(t))
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	if err := q.DoctorUpsertProfile(ctx, doctorProfile("ext-a", at)); err != nil {
		t.Fatal(err)
	}
	const id = "id-ext-a"

	if _, err := q.PreferencesGet(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get before any: %v, want ErrNotFound", err)
	}
	defaults := domain.DefaultPreferences()
	row := store.NewPreferencesRow(id, defaults, at)
	if err := q.PreferencesInsertIfAbsent(ctx, &row); err != nil {
		t.Fatal(err)
	}
	got, err := q.PreferencesGet(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, defaults) {
		t.Fatalf("defaults stored: %+v, want %+v", got, defaults)
	}

	changed := domain.Preferences{
		Channels: map[domain.Category][]domain.Channel{
			domain.CategoryResults:         {domain.ChannelInApp, domain.ChannelEmail},
			domain.CategoryCriticalResults: {domain.ChannelInApp, domain.ChannelSMS},
		},
		QuietHours:      domain.QuietHours{Start: "22:00", End: "07:00"},
		Digest:          "daily@18:00",
		FallbackOrder:   []domain.Channel{domain.ChannelSMS, domain.ChannelPush},
		NoWeeklySummary: true,
	}
	// A second default row changes nothing; an upsert replaces the row.
	again := store.NewPreferencesRow(id, changed, at.Add(time.Hour))
	if err := q.PreferencesInsertIfAbsent(ctx, &again); err != nil {
		t.Fatal(err)
	}
	if got, err := q.PreferencesGet(ctx, id); err != nil || !reflect.DeepEqual(got, defaults) {
		t.Fatalf("after insert-if-absent over a row: %+v %v, want the defaults kept", got, err)
	}
	if err := q.PreferencesUpsert(ctx, &again); err != nil {
		t.Fatal(err)
	}
	if got, err := q.PreferencesGet(ctx, id); err != nil || !reflect.DeepEqual(got, changed) {
		t.Fatalf("after upsert: %+v %v, want %+v", got, err, changed)
	}

	// By doctor, for a batch: a doctor with no row is left out (the caller
	// gives it the defaults).
	if err := q.DoctorUpsertProfile(ctx, doctorProfile("ext-b", at)); err != nil {
		t.Fatal(err)
	}
	byDoctor, err := q.PreferencesListByDoctors(ctx, []string{id, "id-ext-b", "nope"})
	if err != nil || len(byDoctor) != 1 || !reflect.DeepEqual(byDoctor[id], changed) {
		t.Fatalf("by doctor: %+v %v, want only %s's", byDoctor, err, id)
	}
	if none, err := q.PreferencesListByDoctors(ctx, nil); err != nil || len(none) != 0 {
		t.Fatalf("no doctors: %+v %v", none, err)
	}
}
