// Package storetest is the data layer's shared test suite. Like river's
// riverdrivertest, it is written once against store.Executor and run by
// every backend: store's own tests run it on SQLite and on PostgreSQL, so
// a statement that works on one and not the other fails there.
//
// Each aggregate has its file here (apikeys.go, ...), called from Exercise.
package storetest

import (
	"testing"

	"github.com/uptrace/bun"
)

// Opener returns a fresh, migrated database for one test.
type Opener func(t *testing.T) *bun.DB

// Exercise runs the whole suite on the databases open returns.
func Exercise(t *testing.T, open Opener) {
	t.Run("APIKey", func(t *testing.T) { t.Parallel(); exerciseAPIKeys(t, open) })
	t.Run("CronRun", func(t *testing.T) { t.Parallel(); exerciseCronRuns(t, open) })
	t.Run("Retention", func(t *testing.T) { t.Parallel(); exerciseRetention(t, open) })
	t.Run("Digest", func(t *testing.T) { t.Parallel(); exerciseDigests(t, open) })
	t.Run("Escalation", func(t *testing.T) { t.Parallel(); exerciseEscalations(t, open) })
	t.Run("Broadcast", func(t *testing.T) { t.Parallel(); exerciseBroadcasts(t, open) })
	t.Run("Report", func(t *testing.T) { t.Parallel(); exerciseReports(t, open) })
	t.Run("PoisonMessage", func(t *testing.T) { t.Parallel(); exercisePoisonMessages(t, open) })
	t.Run("Audit", func(t *testing.T) { t.Parallel(); exerciseAudit(t, open) })
	t.Run("Delivery", func(t *testing.T) { t.Parallel(); exerciseDeliveries(t, open) })
	t.Run("Target", func(t *testing.T) { t.Parallel(); exerciseTargets(t, open) })
	t.Run("Notification", func(t *testing.T) { t.Parallel(); exerciseNotifications(t, open) })
	t.Run("Parking", func(t *testing.T) { t.Parallel(); exerciseParking(t, open) })
	t.Run("Checkup", func(t *testing.T) { t.Parallel(); exerciseCheckups(t, open) })
	t.Run("Order", func(t *testing.T) { t.Parallel(); exerciseOrders(t, open) })
	t.Run("PortalReads", func(t *testing.T) { t.Parallel(); exercisePortalReads(t, open) })
	t.Run("Doctor", func(t *testing.T) { t.Parallel(); exerciseDoctors(t, open) })
	t.Run("Preferences", func(t *testing.T) { t.Parallel(); exercisePreferences(t, open) })
	t.Run("Delegation", func(t *testing.T) { t.Parallel(); exerciseDelegations(t, open) })
	t.Run("Device", func(t *testing.T) { t.Parallel(); exerciseDevices(t, open) })
	t.Run("WebhookEndpoint", func(t *testing.T) { t.Parallel(); exerciseWebhookEndpoints(t, open) })
	t.Run("IdempotencyKey", func(t *testing.T) { t.Parallel(); exerciseIdempotencyKeys(t, open) })
	t.Run("LoginAudit", func(t *testing.T) { t.Parallel(); exerciseLoginAudit(t, open) })
}
