// Package delivery carries notifications to doctors: it takes one
// send-notification command per notification and channel, re-checks that
// the notification should still go out, calls the channel's provider, and
// records every attempt and the delivery's status. Transient failures are
// retried later through the database (a due time the scheduler picks up), so
// a failing provider never holds up other deliveries on the same partition.
package delivery

import (
	"github.com/rfd-notify/rfd/internal/core/domain"
)

// Engagement statuses of in-app deliveries, after delivered.
const (
	StatusRead         = "read"
	StatusAcknowledged = "acknowledged"
)

// rank orders the progress statuses; a status update only ever moves a
// delivery forward, so a late "sent" callback never overwrites "delivered".
var rank = map[string]int{
	domain.DeliveryQueued:    0,
	domain.DeliverySending:   1,
	domain.DeliverySent:      2,
	domain.DeliveryDelivered: 3,
	StatusRead:               4,
	StatusAcknowledged:       5,
}

// terminal statuses end a delivery; nothing moves it afterwards except
// engagement on a delivered in-app notification.
var terminal = map[string]bool{
	domain.DeliveryFailed:      true,
	domain.DeliveryUndelivered: true,
	domain.DeliverySuppressed:  true,
}

// CanMove reports whether a delivery in status from may move to status to.
func CanMove(from, to string) bool {
	if from == to || terminal[from] {
		return false
	}
	if terminal[to] {
		// A failure cannot undo a confirmed delivery.
		return rank[from] < rank[domain.DeliveryDelivered]
	}
	rf, okf := rank[from]
	rt, okt := rank[to]
	return okf && okt && rt > rf
}

// predecessors lists the statuses from which to may be reached, for the
// WHERE clause of a monotonic UPDATE.
func predecessors(to string) []string {
	var out []string
	for from := range rank {
		if CanMove(from, to) {
			out = append(out, from)
		}
	}
	return out
}

// Final reports whether a delivery in status s needs no more sending.
func Final(s string) bool {
	return terminal[s] || rank[s] >= rank[domain.DeliverySent]
}
