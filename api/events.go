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

	"github.com/rfd-notify/rfd/auth"
	"github.com/rfd-notify/rfd/contracts"
	"github.com/rfd-notify/rfd/events"
	"github.com/rfd-notify/rfd/outbox"
)

// Inbound event types of POST /v1/events/{type}: the names of their topics'
// contracts.
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
	example string // file in contracts.FS
	topic   func(in *integrations) string
	// decode validates a payload and returns its aggregate id (the
	// partition key).
	decode func(payload []byte) (string, error)
}

var inboundEvents = []inboundEvent{
	{
		name: EventCheckup, scope: auth.ScopeEventsCheckup, ceType: events.TypeCheckupEvent, goType: reflect.TypeFor[events.CheckupEvent](), example: contracts.CheckupEventExample,
		topic: func(in *integrations) string { return in.cfg.TopicCheckupEvents },
		decode: func(p []byte) (string, error) {
			ev, err := events.DecodeCheckupEvent(p)
			return ev.CheckupID, err
		},
	},
	{
		name: EventOrderHistory, scope: auth.ScopeEventsOrderHistory, ceType: events.TypeOrderHistoryEvent, goType: reflect.TypeFor[events.OrderHistoryEvent](), example: contracts.OrderHistoryEventExample,
		topic: func(in *integrations) string { return in.cfg.TopicOrderHistoryEvents },
		decode: func(p []byte) (string, error) {
			ev, err := events.DecodeOrderHistoryEvent(p)
			return ev.OrderID, err
		},
	},
	{
		name: EventUserCreated, scope: auth.ScopeEventsUserCreated, ceType: events.TypeUserCreated, goType: reflect.TypeFor[events.UserCreated](), example: contracts.UserCreatedExample,
		topic: func(in *integrations) string { return in.cfg.TopicUserCreated },
		decode: func(p []byte) (string, error) {
			ev, err := events.DecodeUserCreated(p)
			return ev.ExternalUserID, err
		},
	},
	{
		name: EventInternalLogin, scope: auth.ScopeEventsInternalLogin, ceType: events.TypeInternalLogin, goType: reflect.TypeFor[events.InternalLogin](), example: contracts.InternalLoginExample,
		topic: func(in *integrations) string { return in.cfg.TopicInternalLogin },
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
	Type           string `path:"type" enum:"checkup-events,order-history-events,user-created,internal-login" doc:"The contract of the body: the topic it is published to." example:"checkup-events"`
	CEID           string `header:"ce-id" maxLength:"200" doc:"The event's id (CloudEvents id), the consumers' deduplication key: re-sending an event with the same id never acts on it twice. Defaults to the Idempotency-Key, else a new UUID." example:"checkup-2026-0001-v1"`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Makes a retry safe: for 24 hours, the same key with the same request answers the first response again (with Idempotent-Replayed: true); the same key with a different request is 409. Keys are per API key; only their hash is stored." example:"checkup-2026-0001-v1"`
	RawBody        []byte
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

// eventScopes are the ingestion scopes, of which ingestEvent needs the
// one of the event's type.
func eventScopes() (anyOf []string, byType map[string]string, doc string) {
	byType = map[string]string{}
	var parts []string
	for _, e := range inboundEvents {
		anyOf = append(anyOf, e.scope)
		byType[e.name] = e.scope
		parts = append(parts, e.name+" needs "+e.scope)
	}
	return anyOf, byType, strings.Join(parts, ", ")
}

func registerEvents(api huma.API, in *integrations) {
	anyOf, byType, perType := eventScopes()
	op := apiKeyOp("ingestEvent", http.MethodPost, "/v1/events/{type}", tagEvents,
		"Ingest an inbound event",
		"Takes one event of the inbound contracts (contracts/*.schema.json, the same the Kafka consumers read) for integrators without "+
			"Kafka, validates it against its contract — a failure is 422 naming the field, never its value — and publishes it through the "+
			"outbox to the type's topic, with CloudEvents headers (ce_id from the ce-id header, else the Idempotency-Key, else a new UUID; "+
			"ce_source names the API key that sent it, /rfd-notify/api-keys/{key id}, so a poisoned or questioned event leads back to its key; "+
			"the audit log records the key, the type, the event id and the aggregate id) "+
			"and the aggregate id as partition key. From there it follows exactly the path of a Kafka event. "+
			"Answers 202 with the event id.\n\n"+
			"Each type needs its own scope: "+perType+". A key without the type's scope is 403, whatever other scopes it has. "+
			"Keys issued with the retired scope events:write may still send checkup-events and order-history-events, nothing else.",
		nil,
		http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
	// The scope depends on the path's type. The security middleware
	// requires every scope of a requirement, so the key is authenticated
	// there and its scope checked here (as getDelivery does).
	op.Extensions = map[string]any{"x-scopes-any-of": anyOf, "x-scope-by-type": byType}
	op.DefaultStatus = http.StatusAccepted
	huma.Register(api, op, in.ingestEvent)
	describeEventBody(api.OpenAPI(), "/v1/events/{type}")
}

// eventSource is the ce_source of an event sent with key: the key's id,
// which is unique and stable (its name is neither), never its secret.
func eventSource(key auth.APIKey) string {
	return "/rfd-notify/api-keys/" + key.ID
}

// describeEventBody documents the request body of the ingest operation:
// one of the contracts, as typed schemas with their examples. The body is
// read raw and validated by the contracts' own decoders, so this only
// describes it.
func describeEventBody(oapi *huma.OpenAPI, path string) {
	item := oapi.Paths[path]
	if item == nil || item.Post == nil {
		return
	}
	reg := huma.NewMapRegistry("#/components/schemas/", func(t reflect.Type, hint string) string {
		return "Inbound" + huma.DefaultSchemaNamer(t, hint)
	})
	body := &huma.Schema{
		Type:        huma.TypeObject,
		Description: "An event of the contract named by the path's type: checkup-events (InboundCheckupEvent), order-history-events (InboundOrderHistoryEvent), user-created (InboundUserCreated) or internal-login (InboundInternalLogin). The contracts' JSON Schemas (contracts/*.schema.json) are authoritative.",
		Properties:  map[string]*huma.Schema{},
	}
	examples := map[string]*huma.Example{}
	for _, e := range inboundEvents {
		ref := reg.Schema(e.goType, true, "")
		body.AnyOf = append(body.AnyOf, ref)
		for name := range reg.SchemaFromRef(ref.Ref).Properties {
			body.Properties[name] = &huma.Schema{}
		}
		if raw, err := contracts.FS.ReadFile(e.example); err == nil {
			var v any
			if json.Unmarshal(raw, &v) == nil {
				examples[e.name] = &huma.Example{Summary: "POST /v1/events/" + e.name, Value: v}
			}
		}
	}
	body.AdditionalProperties = false
	schemas := oapi.Components.Schemas.Map()
	for name, s := range reg.Map() {
		if _, taken := schemas[name]; !taken {
			schemas[name] = s
		}
	}
	item.Post.RequestBody = &huma.RequestBody{
		Description: "The event, as JSON.",
		Required:    true,
		Content:     map[string]*huma.MediaType{"application/json": {Schema: body, Examples: examples}},
	}
}

func (in *integrations) ingestEvent(ctx context.Context, req *ingestEventInput) (*ingestEventOutput, error) {
	key, err := apiKeyOf(ctx)
	if err != nil {
		return nil, err
	}
	ev, ok := inboundEventOf(req.Type)
	if !ok {
		return nil, huma.Error404NotFound("no such event type")
	}
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
	idem := newIdempotency(key.ID, req.IdempotencyKey, "ingestEvent", req.Type, strings.TrimSpace(req.CEID), canon)
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
		msg := message.NewMessage(uuid.NewString(), append([]byte(nil), req.RawBody...))
		source := eventSource(key)
		for k, v := range events.CloudEventMetadata(ceID, ev.ceType, source, in.now()) {
			msg.Metadata.Set(k, v)
		}
		msg.Metadata.Set(outbox.PartitionKeyKey, aggregate)
		if err := in.outbox.Publish(ctx, tx, topic, msg); err != nil {
			return err
		}
		// The message and its ce_source are gone once consumed; the audit
		// row keeps which key sent what, e.g. which key changed a doctor.
		if err := in.audit(ctx, tx, "event.ingest", req.Type, ceID, outcomeSuccess, map[string]any{"aggregate": aggregate}); err != nil {
			return err
		}
		out.Status = http.StatusAccepted
		out.Body = AcceptedEvent{ID: ceID, Type: ev.ceType, Topic: topic, Source: source}
		return in.remember(ctx, tx, idem, out.Status, out.Body)
	})
	if err != nil {
		return nil, in.fail(ctx, "ingestEvent", err)
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
