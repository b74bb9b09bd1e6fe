package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/jobs/poison"
)

const tagPoison = "Poison"

// PoisonMessage is a poisoned message as operators see it. The payload is
// masked (patient fields replaced by "***") unless revealed.
type PoisonMessage struct {
	ID             string            `json:"id" example:"5f9d4f77-99e0-45c0-ad63-6ccd83bf1c95"`
	MessageID      string            `json:"message_id" doc:"The original message id; a replay keeps it, so the consumer's inbox still deduplicates." example:"evt-2026-11-25-0001"`
	Topic          string            `json:"topic" doc:"The topic the message was consumed from, and a replay publishes to." example:"checkup-events"`
	Handler        string            `json:"handler" example:"checkup-events"`
	Class          string            `json:"class" enum:"permanent,exhausted,unknown" doc:"permanent: no retry could help (undecodable, invalid); exhausted: transient failures outlasted the retries."`
	Reason         string            `json:"reason" example:"permanent: checkup event: /result/version: required"`
	Attempts       int               `json:"attempts" doc:"Handler attempts of the last poisoning." example:"1"`
	TimesPoisoned  int               `json:"times_poisoned" doc:"How often this message was poisoned." example:"1"`
	FirstSeenAt    time.Time         `json:"first_seen_at" example:"2026-11-25T03:00:00Z"`
	LastSeenAt     time.Time         `json:"last_seen_at" example:"2026-11-25T03:00:00Z"`
	State          string            `json:"state" enum:"pending,replayed,discarded"`
	StateReason    string            `json:"state_reason,omitempty"`
	StateChangedBy string            `json:"state_changed_by,omitempty" example:"api_key:0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	StateChangedAt *time.Time        `json:"state_changed_at,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty" doc:"Only on the single-message view."`
	Payload        string            `json:"payload,omitempty" doc:"Only on the single-message view: the JSON payload with patient fields masked, or all of it when revealed. Empty when the payload is not JSON and not revealed."`
	PayloadMasked  bool              `json:"payload_masked" doc:"Whether patient fields of the payload are masked or hidden."`
}

func poisonView(m poison.Message) PoisonMessage {
	return PoisonMessage{
		ID: m.ID, MessageID: m.MessageID, Topic: m.Topic, Handler: m.Handler, Class: m.Class, Reason: m.Reason,
		Attempts: m.Attempts, TimesPoisoned: m.TimesPoisoned, FirstSeenAt: m.FirstSeenAt.UTC(), LastSeenAt: m.LastSeenAt.UTC(),
		State: m.State, StateReason: m.StateReason, StateChangedBy: m.StateChangedBy, StateChangedAt: utcPtr(m.StateChangedAt),
		PayloadMasked: true,
	}
}

type listPoisonInput struct {
	Topic  string    `query:"topic" maxLength:"200" doc:"Only messages of this original topic." example:"checkup-events"`
	Reason string    `query:"reason" maxLength:"200" doc:"permanent or exhausted (the class), or text the reason contains."`
	State  string    `query:"state" enum:"pending,replayed,discarded" doc:"Only messages in this state."`
	Since  time.Time `query:"since" doc:"Only messages poisoned (last) at or after this time."`
	After  string    `query:"after" maxLength:"100" doc:"The next_after of the previous page."`
	Limit  int       `query:"limit" minimum:"1" maximum:"100" default:"50"`
}

type listPoisonOutput struct {
	Body struct {
		Items     []PoisonMessage `json:"items"`
		NextAfter string          `json:"next_after,omitempty" doc:"Pass as after for the next page; absent on the last page."`
	}
}

type getPoisonInput struct {
	ID     string `path:"id" maxLength:"100"`
	Reveal bool   `query:"reveal" doc:"Show the payload unmasked; written to the audit log."`
}

type getPoisonOutput struct {
	Body PoisonMessage
}

// PoisonReplayRequest replays pending messages.
type PoisonReplayRequest struct {
	IDs    []string `json:"ids,omitempty" maxItems:"100" doc:"The messages to replay; or all with topic."`
	All    bool     `json:"all,omitempty" doc:"Replay every pending message of topic."`
	Topic  string   `json:"topic,omitempty" maxLength:"200" doc:"The original topic, with all."`
	DryRun bool     `json:"dry_run,omitempty" doc:"Say what would be replayed; change nothing."`
	Reason string   `json:"reason,omitempty" maxLength:"1000" doc:"Why, for the audit log."`
}

// PoisonDiscardRequest discards pending messages.
type PoisonDiscardRequest struct {
	IDs    []string `json:"ids" minItems:"1" maxItems:"100"`
	Reason string   `json:"reason" minLength:"1" maxLength:"1000" doc:"Why the messages are discarded; written to the audit log."`
	DryRun bool     `json:"dry_run,omitempty"`
}

type poisonReplayInput struct {
	Body PoisonReplayRequest
}

type poisonDiscardInput struct {
	Body PoisonDiscardRequest
}

type poisonOutcomesOutput struct {
	Body struct {
		Outcomes []poison.Outcome `json:"outcomes"`
	}
}

type poisonOps struct {
	*service
	svc *poison.Service
}

// registerPoison registers the operators' poison operations under
// /v1/admin/poison, over d's poison service. Without one (New: no
// database) they are described but answer 503.
func registerPoison(operator *huma.Group, h *service, d Deps) {
	ops := &poisonOps{service: h, svc: d.Poison}
	oapi := operator.OpenAPI()
	if !hasTag(oapi, tagPoison) {
		oapi.Tags = append(oapi.Tags, &huma.Tag{Name: tagPoison, Description: "Operators: messages that failed permanently or exhausted their retries, " +
			"drained from the poison topic; list, inspect, replay to the original topic, or discard with a reason. Replays, discards and reveals are audited."})
	}
	huma.Register(operator, huma.Operation{
		OperationID: "listPoison",
		Method:      http.MethodGet,
		Path:        "/v1/admin/poison",
		Summary:     "List poisoned messages",
		Description: "Oldest first, filtered by topic, reason, state and time. Needs scope poison:read.",
		Tags:        []string{tagPoison},
		Metadata:    scopes(auth.ScopePoisonRead),
	}, ops.list)
	huma.Register(operator, huma.Operation{
		OperationID: "getPoison",
		Method:      http.MethodGet,
		Path:        "/v1/admin/poison/{id}",
		Summary:     "Get a poisoned message",
		Description: "With its metadata and payload; patient fields are masked unless reveal=true, which is audited. Needs scope poison:read.",
		Tags:        []string{tagPoison},
		Metadata:    scopes(auth.ScopePoisonRead),
		Errors:      []int{http.StatusNotFound},
	}, ops.get)
	huma.Register(operator, huma.Operation{
		OperationID: "replayPoison",
		Method:      http.MethodPost,
		Path:        "/v1/admin/poison/replay",
		Summary:     "Replay poisoned messages",
		Description: "Publishes each pending message back to its original topic through the outbox, with its original message id, and marks it replayed. " +
			"Messages that are not pending are skipped. Every replay is audited. Needs scope poison:write.",
		Tags:     []string{tagPoison},
		Metadata: scopes(auth.ScopePoisonWrite),
		Errors:   []int{http.StatusUnprocessableEntity},
	}, ops.replay)
	huma.Register(operator, huma.Operation{
		OperationID: "discardPoison",
		Method:      http.MethodPost,
		Path:        "/v1/admin/poison/discard",
		Summary:     "Discard poisoned messages",
		Description: "Marks each pending message discarded with the reason given. Every discard is audited. Needs scope poison:write.",
		Tags:        []string{tagPoison},
		Metadata:    scopes(auth.ScopePoisonWrite),
		Errors:      []int{http.StatusUnprocessableEntity},
	}, ops.discard)
}

func (p *poisonOps) ready() error {
	if p.svc == nil {
		return huma.Error503ServiceUnavailable("poison operations are not available")
	}
	return nil
}

func actorOf(ctx context.Context) poison.Actor {
	c := callerOf(ctx)
	return poison.Actor{Type: c.actorType, ID: c.actorID, IP: c.ip, UserAgent: c.userAgent}
}

func (p *poisonOps) list(ctx context.Context, in *listPoisonInput) (*listPoisonOutput, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	ctx, cancel := p.dbctx(ctx)
	defer cancel()
	rows, err := p.svc.List(ctx, poison.Filter{Topic: in.Topic, Reason: in.Reason, State: in.State, Since: in.Since, After: in.After, Limit: in.Limit})
	if errors.Is(err, poison.ErrNotFound) {
		return nil, huma.Error422UnprocessableEntity("after: no such poisoned message")
	}
	if err != nil {
		return nil, p.fail(ctx, "listPoison", err)
	}
	out := &listPoisonOutput{}
	out.Body.Items = make([]PoisonMessage, 0, len(rows))
	for _, m := range rows {
		out.Body.Items = append(out.Body.Items, poisonView(m))
	}
	if len(rows) == in.Limit {
		out.Body.NextAfter = rows[len(rows)-1].ID
	}
	return out, nil
}

func (p *poisonOps) get(ctx context.Context, in *getPoisonInput) (*getPoisonOutput, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	ctx, cancel := p.dbctx(ctx)
	defer cancel()
	m, err := p.svc.Get(ctx, in.ID)
	if errors.Is(err, poison.ErrNotFound) {
		return nil, huma.Error404NotFound("no such poisoned message")
	}
	if err != nil {
		return nil, p.fail(ctx, "getPoison", err)
	}
	raw, err := m.RawPayload()
	if err != nil {
		return nil, p.fail(ctx, "getPoison", err)
	}
	v := poisonView(m)
	v.Metadata = m.Metadata
	if in.Reveal {
		if err := p.svc.AuditReveal(ctx, actorOf(ctx), m.ID, map[string]any{"via": "api"}); err != nil {
			return nil, p.fail(ctx, "getPoison", err)
		}
		v.Payload, v.PayloadMasked = string(raw), false
	} else if masked := poison.MaskJSON(raw); masked != nil {
		v.Payload = string(masked)
	}
	return &getPoisonOutput{Body: v}, nil
}

func (p *poisonOps) replay(ctx context.Context, in *poisonReplayInput) (*poisonOutcomesOutput, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	b := in.Body
	if b.All == (len(b.IDs) > 0) {
		return nil, huma.Error422UnprocessableEntity("give ids, or all with topic", &huma.ErrorDetail{Location: "body.ids", Message: "ids or all"})
	}
	if b.All && strings.TrimSpace(b.Topic) == "" {
		return nil, huma.Error422UnprocessableEntity("all needs a topic", &huma.ErrorDetail{Location: "body.topic", Message: "required with all"})
	}
	ctx, cancel := p.dbctx(ctx)
	defer cancel()
	var out []poison.Outcome
	var err error
	if b.All {
		out, err = p.svc.ReplayAll(ctx, actorOf(ctx), b.Topic, b.Reason, b.DryRun)
	} else {
		out, err = p.svc.Replay(ctx, actorOf(ctx), b.IDs, b.Reason, b.DryRun)
	}
	if err != nil {
		return nil, p.fail(ctx, "replayPoison", err)
	}
	res := &poisonOutcomesOutput{}
	res.Body.Outcomes = out
	return res, nil
}

func (p *poisonOps) discard(ctx context.Context, in *poisonDiscardInput) (*poisonOutcomesOutput, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Body.Reason) == "" {
		return nil, huma.Error422UnprocessableEntity("a reason is required", &huma.ErrorDetail{Location: "body.reason", Message: "required"})
	}
	ctx, cancel := p.dbctx(ctx)
	defer cancel()
	out, err := p.svc.Discard(ctx, actorOf(ctx), in.Body.IDs, in.Body.Reason, in.Body.DryRun)
	if err != nil {
		return nil, p.fail(ctx, "discardPoison", err)
	}
	res := &poisonOutcomesOutput{}
	res.Body.Outcomes = out
	return res, nil
}
