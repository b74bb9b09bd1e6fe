// Package inapp pushes in-app notifications to the doctors' open portal
// sessions. The delivery consumer publishes an opaque event (doctor,
// notification, sequence) to the in-app broadcast topic; every API replica
// reads that topic in a consumer group of its own, so each one sees every
// event, and hands it to the sessions of that doctor connected to it.
package inapp

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/delivery"
)

// Hub is the registry of one replica's open streams.
type Hub struct {
	mu      sync.Mutex
	subs    map[string]map[chan delivery.InAppEvent]struct{}
	started time.Time
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[chan delivery.InAppEvent]struct{}{}, started: time.Now()}
}

// Subscribe registers a stream of doctorID. Events are dropped, not
// queued without bound, when the stream falls 64 behind: the client then
// catches up from the database on its next reconnect (Last-Event-ID).
func (h *Hub) Subscribe(doctorID string) (<-chan delivery.InAppEvent, func()) {
	ch := make(chan delivery.InAppEvent, 64)
	h.mu.Lock()
	if h.subs[doctorID] == nil {
		h.subs[doctorID] = map[chan delivery.InAppEvent]struct{}{}
	}
	h.subs[doctorID][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[doctorID], ch)
		if len(h.subs[doctorID]) == 0 {
			delete(h.subs, doctorID)
		}
		h.mu.Unlock()
	}
}

// Connected is the number of open streams.
func (h *Hub) Connected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.subs {
		n += len(s)
	}
	return n
}

// Publish hands ev to the doctor's open streams on this replica.
func (h *Hub) Publish(ev delivery.InAppEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[ev.DoctorID] {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Handle is the router handler of the broadcast topic. A replica that
// starts reads the topic from its group's start: events older than the
// replica are skipped, no stream of this replica was open for them and the
// portal fetches them from the database.
func (h *Hub) Handle(msg *message.Message) error {
	var ev delivery.InAppEvent
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return msgerr.Permanent(fmt.Errorf("in-app event: %w", err))
	}
	if ev.At.Before(h.started.Add(-time.Minute)) {
		return nil
	}
	h.Publish(ev)
	return nil
}
