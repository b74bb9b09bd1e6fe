package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/contracts"
	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/outbox"
)

// Inbound event types: the names of their topics' contracts, each posted
// to POST /v1/events/{name}.
const (
	EventCheckup       = "checkup-events"
	EventOrderHistory  = "order-history-events"
	EventUserCreated   = "user-created"
	EventInternalLogin = "internal-login"
)

// inboundEvent is one contract integrators may post.
type inboundEvent struct {
	name   string
	ceType string
	// scope is what an API key needs to send this type.
	scope   string
	goType  reflect.Type
	summary string
	example string // file in contracts.FS
	topic   func(in *integrations) string
	// decode validates a payload and returns its aggregate id (the
	// partition key).
	decode func(payload []byte) (string, error)
}

// operationID names the event's ingest operation after its Go type
// (ingestCheckupEvent), which is also what generated clients call it.
func (e inboundEvent) operationID() string { return "ingest" + e.goType.Name() }

var inboundEvents = []inboundEvent{
	{
		name: EventCheckup, scope: auth.ScopeEventsCheckup, ceType: events.TypeCheckupEvent, goType: reflect.TypeFor[events.CheckupEvent](), example: contracts.CheckupEventExample,
		summary: "Ingest a checkup event",
		topic:   func(in *integrations) string { return in.cfg.TopicCheckupEvents },
		decode: func(p []byte) (string, error) {
			ev, err := events.DecodeCheckupEvent(p)
			return ev.CheckupID, err
		},
	},
	{
		name: EventOrderHistory, scope: auth.ScopeEventsOrderHistory, ceType: events.TypeOrderHistoryEvent, goType: reflect.TypeFor[events.OrderHistoryEvent](), example: contracts.OrderHistoryEventExample,
		summary: "Ingest an order history event",
		topic:   func(in *integrations) string { return in.cfg.TopicOrderHistoryEvents },
		decode: func(p []byte) (string, error) {
			ev, err := events.DecodeOrderHistoryEvent(p)
			return ev.OrderID, err
		},
	},
	{
		name: EventUserCreated, scope: auth.ScopeEventsUserCreated, ceType: events.TypeUserCreated, goType: reflect.TypeFor[events.UserCreated](), example: contracts.UserCreatedExample,
		summary: "Ingest a user-created event",
		topic:   func(in *integrations) string { return in.cfg.TopicUserCreated },
		decode: func(p []byte) (string, error) {
			ev, err := events.DecodeUserCreated(p)
			return ev.ExternalUserID, err
		},
	},
	{
		name: EventInternalLogin, scope: auth.ScopeEventsInternalLogin, ceType: events.TypeInternalLogin, goType: reflect.TypeFor[events.InternalLogin](), example: contracts.InternalLoginExample,
		summary: "Ingest an internal-login event",
		topic:   func(in *integrations) string { return in.cfg.TopicInternalLogin },
		decode: func(p []byte) (string, error) {
			ev, err := events.DecodeInternalLogin(p)
			return ev.ExternalUserID, err
		},
	},
}

func inboundEventOf(name string) (inboundEvent, bool) {
	for _, e := range inboundEvents {
		if e.name == name {
			return e, true
		}
	}
	return inboundEvent{}, false
}

type ingestEventInput struct {
	CEID           string `header:"ce-id" maxLength:"200" doc:"The event's id (CloudEvents id), the consumers' deduplication key: re-sending an event with the same id never acts on it twice. Defaults to the Idempotency-Key, else a new UUID." example:"checkup-2026-0001-v1"`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Makes a retry safe: for 24 hours, the same key with the same request answers the first response again (with Idempotent-Replayed: true); the same key with a different request is 409. Keys are per API key; only their hash is stored." example:"checkup-2026-0001-v1"`
	RawBody        []byte
}

// ingestAnyEventInput is the input of the hidden POST /v1/events/{type},
// which only answers event types that are not one of the operations.
type ingestAnyEventInput struct {
	Type string `path:"type" enum:"checkup-events,order-history-events,user-created,internal-login" doc:"The contract of the body: the topic it is published to."`
	ingestEventInput
}

// AcceptedEvent says an event was accepted into the pipeline.
type AcceptedEvent struct {
	ID     string `json:"id" doc:"The event's id (CloudEvents ce_id)." example:"checkup-2026-0001-v1"`
	Type   string `json:"type" doc:"Its CloudEvents type." example:"rfd.checkup.v1"`
	Topic  string `json:"topic" doc:"The topic it was published to." example:"checkup-events"`
	Source string `json:"source" doc:"Its CloudEvents source (ce_source): the API key that sent it, /rfd-notify/api-keys/{key id}." example:"/rfd-notify/api-keys/5f0c2d9e-3b1a-4c7e-9d2f-8a6b4e1c0f3d"`
}

type ingestEventOutput struct {
	Status   int
	Replayed string `header:"Idempotent-Replayed" doc:"true when this is the remembered response of an earlier request with the same Idempotency-Key."`
	Body     AcceptedEvent
}

// registerEvents registers one operation per inbound contract, POST
// /v1/events/{name}, each with the contract's own body schema, so that
// generated clients get a concrete type for each (a single operation with
// the type in the path could only describe "one of them", which
// generators turn into untyped fields).
func registerEvents(integrator *huma.Group, in *integrations) {
	oapi := integrator.OpenAPI()
	reg := huma.NewMapRegistry("#/components/schemas/", func(t reflect.Type, hint string) string {
		return "Inbound" + huma.DefaultSchemaNamer(t, hint)
	})
	for _, ev := range inboundEvents {
		path := "/v1/events/" + ev.name
		op := huma.Operation{
			OperationID: ev.operationID(),
			Method:      http.MethodPost,
			Path:        path,
			Summary:     ev.summary,
			Description: "Takes one event of the " + ev.name + " contract (contracts/*.schema.json, the same the Kafka consumers read) for integrators without " +
				"Kafka, validates it against the contract — a failure is 422 naming the field, never its value — and publishes it through the " +
				"outbox to the contract's topic, with CloudEvents headers (ce_id from the ce-id header, else the Idempotency-Key, else a new UUID; " +
				"ce_source names the API key that sent it, /rfd-notify/api-keys/{key id}, so a poisoned or questioned event leads back to its key; " +
				"the audit log records the key, the type, the event id and the aggregate id) " +
				"and the aggregate id as partition key. From there it follows exactly the path of a Kafka event. " +
				"Answers 202 with the event id.\n\n" +
				"Needs scope " + ev.scope + "; each event type has its own, and a key without this one is 403 whatever other scopes it has. " +
				legacyNote(ev),
			Tags:          []string{tagEvents},
			Metadata:      scopes(ev.scope),
			Errors:        []int{http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity},
			DefaultStatus: http.StatusAccepted,
			RequestBody:   eventBody(oapi, reg, ev),
			// The contract's decoder validates the raw body: huma's
			// validation would answer first, and its errors quote the value.
			SkipValidateBody: true,
		}
		huma.Register(integrator, op, func(ctx context.Context, req *ingestEventInput) (*ingestEventOutput, error) {
			return in.ingestEvent(ctx, ev, req)
		})
		// The RawBody field adds an octet-stream body; the operation takes
		// JSON. huma's schema links add a $schema property to a body's
		// schema; the contracts allow none.
		delete(oapi.Paths[path].Post.RequestBody.Content, "application/octet-stream")
		delete(oapi.Components.Schemas.SchemaFromRef(op.RequestBody.Content["application/json"].Schema.Ref).Properties, "$schema")
	}
	// Any other type: 422 naming path.type and the types there are, as when
	// one operation took the type as a path parameter. Not in the spec.
	huma.Register(integrator, huma.Operation{
		OperationID:   "ingestEvent",
		Method:        http.MethodPost,
		Path:          "/v1/events/{type}",
		Summary:       "Ingest an inbound event",
		Description:   "Answers event types that are not one of the ingest operations.",
		Tags:          []string{tagEvents},
		Metadata:      scopes(),
		Errors:        []int{http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity},
		DefaultStatus: http.StatusAccepted,
		Hidden:        true,
	}, func(ctx context.Context, req *ingestAnyEventInput) (*ingestEventOutput, error) {
		ev, ok := inboundEventOf(req.Type)
		if !ok {
			return nil, huma.Error404NotFound("no such event type")
		}
		return in.ingestEvent(ctx, ev, &req.ingestEventInput)
	})
}

// eventBody describes the request body of ev's ingest operation: its
// contract as a typed schema (Inbound + the Go type's name, registered with
// the shared schemas) with the contract's example. The body is read raw
// and validated by the contract's own decoder, so this only describes it.
func eventBody(oapi *huma.OpenAPI, reg huma.Registry, ev inboundEvent) *huma.RequestBody {
	ref := reg.Schema(ev.goType, true, "")
	schemas := oapi.Components.Schemas.Map()
	for name, s := range reg.Map() {
		if _, taken := schemas[name]; !taken {
			schemas[name] = s
		}
	}
	mt := &huma.MediaType{Schema: ref}
	if raw, err := contracts.FS.ReadFile(ev.example); err == nil {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			mt.Examples = map[string]*huma.Example{ev.name: {Summary: "POST /v1/events/" + ev.name, Value: v}}
		}
	}
	return &huma.RequestBody{
		Description: "The event, as JSON. The contract's JSON Schema (contracts/*.schema.json) is authoritative.",
		Required:    true,
		Content:     map[string]*huma.MediaType{"application/json": mt},
	}
}

func (in *integrations) ingestEvent(ctx context.Context, ev inboundEvent, req *ingestEventInput) (*ingestEventOutput, error) {
	key, err := apiKeyOf(ctx)
	if err != nil {
		return nil, err
	}
	// The operation's security already requires the scope; checked again
	// here because the hidden catch-all operation reaches this too.
	if err := auth.Authorize(key, ev.scope); err != nil {
		return nil, huma.Error403Forbidden(err.Error())
	}
	if err := in.ready(); err != nil {
		return nil, err
	}
	aggregate, err := ev.decode(req.RawBody)
	if err != nil {
		return nil, eventProblem(err)
	}
	canon, err := canonicalJSON(req.RawBody)
	if err != nil {
		return nil, huma.Error400BadRequest("the body is not JSON")
	}
	ceID := strings.TrimSpace(req.CEID)
	if ceID == "" {
		ceID = strings.TrimSpace(req.IdempotencyKey)
	}
	if ceID == "" {
		ceID = uuid.NewString()
	}
	// A replay must name the same event: the ce-id header is part of the
	// request (a generated id is not, it is what the replay answers).
	idem := newIdempotency(key.ID, req.IdempotencyKey, "ingestEvent", ev.name, strings.TrimSpace(req.CEID), canon)
	topic := ev.topic(in)

	ctx, cancel := in.dbctx(ctx)
	defer cancel()
	in.sweepIdempotency(ctx)
	var out ingestEventOutput
	err = in.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		prev, err := in.claim(ctx, tx, idem)
		if err != nil {
			return err
		}
		if prev != nil {
			out.Status, out.Replayed = prev.status, "true"
			return json.Unmarshal(prev.body, &out.Body)
		}
		source := eventSource(key)
		msg := message.NewMessage(eventMessageID(source, ceID), append([]byte(nil), req.RawBody...))
		for k, v := range events.CloudEventMetadata(ceID, ev.ceType, source, in.now()) {
			msg.Metadata.Set(k, v)
		}
		msg.Metadata.Set(outbox.PartitionKeyKey, aggregate)
		if err := in.outbox.Publish(ctx, tx, topic, msg); err != nil {
			return err
		}
		// The message and its ce_source are gone once consumed; the audit
		// row keeps which key sent what, e.g. which key changed a doctor.
		if err := in.audit(ctx, tx, "event.ingest", ev.name, ceID, outcomeSuccess, map[string]any{"aggregate": aggregate}); err != nil {
			return err
		}
		out.Status = http.StatusAccepted
		out.Body = AcceptedEvent{ID: ceID, Type: ev.ceType, Topic: topic, Source: source}
		return in.remember(ctx, tx, idem, out.Status, out.Body)
	})
	if err != nil {
		return nil, in.fail(ctx, ev.operationID(), err)
	}
	return &out, nil
}

// eventProblem answers a payload that breaks its contract: 422 naming the
// field (body.result.version), never its value; 400 for what is not JSON.
func eventProblem(err error) error {
	var ve *events.ValidationError
	if errors.As(err, &ve) {
		loc := "body"
		if ve.Field != "" {
			loc += strings.ReplaceAll(ve.Field, "/", ".")
		}
		return huma.Error422UnprocessableEntity("the event breaks its contract: "+ve.Error(),
			&huma.ErrorDetail{Location: loc, Message: ve.Reason})
	}
	var se *events.SyntaxError
	if errors.As(err, &se) {
		return huma.Error400BadRequest("the body is not one JSON value: " + se.Error())
	}
	return huma.Error422UnprocessableEntity("the event breaks its contract")
}

// eventSource is the ce_source of an event sent with key: the key's id,
// which is unique and stable (its name is neither), never its secret.
func eventSource(key auth.APIKey) string {
	return "/rfd-notify/api-keys/" + key.ID
}

// legacyNote says which event types keys with the retired events:write
// scope may still send.
func legacyNote(ev inboundEvent) string {
	if (auth.APIKey{ScopesText: auth.ScopeEventsWrite}).HasScope(ev.scope) {
		return "Keys issued with the retired scope events:write may still send it."
	}
	return "The retired scope events:write does not grant it."
}

// ingestIDNamespace namespaces the message ids of ingested events.
var ingestIDNamespace = uuid.MustParse("8d4b7f2e-1c3a-5e6f-9b0d-7a2c4e6f8b1d")

// eventMessageID is the message id of the event ceID sent by source: the
// consumers' inbox deduplicates on it, so the same event re-sent is acted
// on once, while two keys (two sources) that happen to pick the same ce-id
// never cancel each other: CloudEvents ids are unique per source only.
func eventMessageID(source, ceID string) string {
	return uuid.NewSHA1(ingestIDNamespace, []byte(source+"\x00"+ceID)).String()
}
