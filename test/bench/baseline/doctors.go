package baseline

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/handlers"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/store"
)

// SeedDoctors inserts doctors 0..n-1 of the events with default preferences
// (as the user-created consumer would have).
func SeedDoctors(ctx context.Context, db *bun.DB, n int) error {
	now := time.Now().UTC()
	docs := make([]domain.Doctor, n)
	prefs := make([]store.PreferencesRow, n)
	for i := range docs {
		ext := DoctorExternalID(i)
		id := handlers.DoctorID(ext)
		docs[i] = domain.Doctor{
			ID: id, ExternalUserID: ext, Name: "Dr. " + ext, LicenceNumber: "MD-" + ext, Specialty: "Cardiology",
			Clinic: "Sukhumvit Heart Clinic", Email: ext + "@clinic.example", Phone: "+66812345678",
			Locale: "en", TimeZone: "Asia/Bangkok", Active: true, ProfileVersion: now, CreatedAt: now, UpdatedAt: now,
		}
		prefs[i] = store.NewPreferencesRow(id, domain.DefaultPreferences(), now)
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for lo := 0; lo < n; lo += 500 {
			hi := min(lo+500, n)
			d, p := docs[lo:hi], prefs[lo:hi]
			if _, err := tx.NewInsert().Model(&d).Exec(ctx); err != nil {
				return fmt.Errorf("doctors: %w", err)
			}
			if _, err := tx.NewInsert().Model(&p).Exec(ctx); err != nil {
				return fmt.Errorf("preferences: %w", err)
			}
		}
		return nil
	})
}
