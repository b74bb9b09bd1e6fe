package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rfd-notify/rfd/internal/store"
)

// doctorProfile is a profile of doctor ext, as of version.
func doctorProfile(ext string, version time.Time) *store.DoctorUpsertProfileParams {
	return &store.DoctorUpsertProfileParams{
		ID: "id-" + ext, ExternalUserID: ext, Name: "Dr. " + ext, LicenceNumber: "MD-" + ext, Specialty: "Cardiology",
		Clinic: "Clinic " + ext, Email: ext + "@clinic.example", Phone: "+6681000000", Locale: "en", TimeZone: "Asia/Bangkok",
		Active: true, ProfileVersion: version, Now: version.Add(time.Minute),
	}
}

func exerciseDoctors(t *testing.T, open Opener) {
	ctx := context.Background()
	db := open(t)
	q := store.NewQueries(db)
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

	if _, err := q.DoctorGetByExternalID(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get by unknown external id: %v, want ErrNotFound", err)
	}
	if _, err := q.DoctorGetByID(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get by unknown id: %v, want ErrNotFound", err)
	}
	if _, err := q.DoctorGetByIDOrExternalID(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get by unknown id or external id: %v, want ErrNotFound", err)
	}

	p := doctorProfile("ext-a", at)
	if err := q.DoctorUpsertProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	d, err := q.DoctorGetByExternalID(ctx, "ext-a")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "id-ext-a" || d.Name != "Dr. ext-a" || d.LicenceNumber != "MD-ext-a" || d.Specialty != "Cardiology" ||
		d.Clinic != "Clinic ext-a" || d.Email != "ext-a@clinic.example" || d.Phone != "+6681000000" || d.Locale != "en" ||
		d.TimeZone != "Asia/Bangkok" || !d.Active || d.NotificationSeq != 0 || !d.ProfileVersion.Equal(at) ||
		!d.CreatedAt.Equal(p.Now) || !d.UpdatedAt.Equal(p.Now) {
		t.Fatalf("get by external id: %+v", d)
	}
	for _, id := range []string{"id-ext-a", "ext-a"} {
		got, err := q.DoctorGetByIDOrExternalID(ctx, id)
		if err != nil || got.ID != "id-ext-a" {
			t.Fatalf("get by id or external id %q: %+v %v", id, got, err)
		}
	}
	if got, err := q.DoctorGetByID(ctx, "id-ext-a"); err != nil || got.ExternalUserID != "ext-a" || !got.ProfileVersion.Equal(at) {
		t.Fatalf("get by id: %+v %v", got, err)
	}
	if _, err := q.DoctorGetByID(ctx, "ext-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get by id with an external id: %v, want ErrNotFound", err)
	}

	// A newer profile changes the doctor; an older one changes nothing.
	newer := doctorProfile("ext-a", at.Add(time.Hour))
	newer.Name, newer.Active = "Dr. Renamed", false
	if err := q.DoctorUpsertProfile(ctx, newer); err != nil {
		t.Fatal(err)
	}
	older := doctorProfile("ext-a", at.Add(30*time.Minute))
	older.Name = "Dr. Stale"
	if err := q.DoctorUpsertProfile(ctx, older); err != nil {
		t.Fatal(err)
	}
	d, err = q.DoctorGetByExternalID(ctx, "ext-a")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "Dr. Renamed" || d.Active || !d.ProfileVersion.Equal(newer.ProfileVersion) ||
		!d.CreatedAt.Equal(p.Now) || !d.UpdatedAt.Equal(newer.Now) {
		t.Fatalf("after a newer then an older profile: %+v", d)
	}

	// The lock is taken inside a transaction, and does nothing on SQLite.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.NewQueries(tx).DoctorLockForUpdate(ctx, "id-ext-a"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
}
