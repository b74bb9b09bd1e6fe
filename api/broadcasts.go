package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/jobs/broadcast"
	"github.com/rfd-notify/rfd/internal/store"
)

const tagBroadcasts = "Broadcasts"

// BroadcastAudience says who receives a broadcast.
type BroadcastAudience struct {
	Kind    string   `json:"kind" enum:"all,clinic,specialty,doctors" doc:"all active doctors, those of a clinic or a specialty, or an explicit list."`
	Value   string   `json:"value,omitempty" maxLength:"200" doc:"The clinic or specialty (kinds clinic and specialty)." example:"Sukhumvit Family Clinic"`
	Doctors []string `json:"doctors,omitempty" maxItems:"500" doc:"Doctor ids or external user ids (kind doctors); unknown or inactive ones are left out." example:"[\"um-usr-7f3a9c\"]"`
}

// BroadcastRequest is a new broadcast: an operator-authored announcement;
// it must not carry patient data, since it goes out on every channel.
type BroadcastRequest struct {
	Category string            `json:"category,omitempty" enum:"announcements,results,orders" default:"announcements" doc:"The preference category the doctors' channel choices and quiet hours come from."`
	Title    string            `json:"title" minLength:"1" maxLength:"200" example:"Portal maintenance on Saturday"`
	Body     string            `json:"body" minLength:"1" maxLength:"2000" example:"The portal is unavailable on Saturday from 22:00 to 23:00."`
	Audience BroadcastAudience `json:"audience"`
}

// BroadcastProgress is how far a broadcast is.
type BroadcastProgress struct {
	ID          string            `json:"id" example:"8d7e3c5a-4f7b-4e55-b7a2-9a0e1b2c3d4e"`
	State       string            `json:"state" enum:"pending,running,done" doc:"pending until the worker starts it; done once every doctor of the audience has a notification."`
	Category    string            `json:"category"`
	Title       string            `json:"title"`
	Audience    BroadcastAudience `json:"audience"`
	Targeted    int               `json:"targeted" doc:"Doctors in the audience when the fan-out started."`
	Created     int               `json:"created" doc:"Notifications made so far."`
	Delivered   int               `json:"delivered" doc:"Notifications delivered on at least one channel."`
	Failed      int               `json:"failed" doc:"Notifications no channel delivered and none is still trying."`
	CreatedAt   time.Time         `json:"created_at"`
	StartedAt   *time.Time        `json:"started_at,omitempty"`
	CompletedAt *time.Time        `json:"completed_at,omitempty"`
}

type createBroadcastInput struct {
	Body BroadcastRequest
}

type broadcastOutput struct {
	Location string `header:"Location"`
	Body     BroadcastProgress
}

type getBroadcastInput struct {
	ID string `path:"id" maxLength:"100"`
}

func registerBroadcasts(operator *huma.Group, h *service) {
	oapi := operator.OpenAPI()
	if !hasTag(oapi, tagBroadcasts) {
		oapi.Tags = append(oapi.Tags, &huma.Tag{Name: tagBroadcasts, Description: "Announcements to an audience of doctors, fanned out by the worker in resumable chunks: one notification per doctor."})
	}
	huma.Register(operator, huma.Operation{
		OperationID: "createBroadcast",
		Method:      http.MethodPost,
		Path:        "/v1/broadcasts",
		Summary:     "Broadcast an announcement",
		Description: "Stores the broadcast and answers 202; the worker fans it out into one notification per doctor of the audience, in chunks, " +
			"through the doctors' preferences and quiet hours. Needs scope broadcasts:write.",
		Tags:          []string{tagBroadcasts},
		Metadata:      scopes(auth.ScopeBroadcastsWrite),
		Errors:        []int{http.StatusUnprocessableEntity},
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *createBroadcastInput) (*broadcastOutput, error) {
		key, _ := auth.APIKeyFromContext(ctx)
		ctx, cancel := h.dbctx(ctx)
		defer cancel()
		b, err := broadcast.Create(ctx, store.NewQueries(h.db), broadcast.Request{
			Category: domain.Category(in.Body.Category), Title: in.Body.Title, Body: in.Body.Body, APIKeyID: key.ID,
			Audience: broadcast.Audience{Kind: in.Body.Audience.Kind, Value: in.Body.Audience.Value, Doctors: in.Body.Audience.Doctors},
		}, h.now())
		var invalid broadcast.InvalidError
		if errors.As(err, &invalid) {
			return nil, huma.Error422UnprocessableEntity(invalid.Error())
		}
		if err != nil {
			return nil, h.fail(ctx, "createBroadcast", err)
		}
		return &broadcastOutput{Location: "/v1/broadcasts/" + b.ID, Body: progressView(broadcast.Progress{Broadcast: b})}, nil
	})
	huma.Register(operator, huma.Operation{
		OperationID: "getBroadcast",
		Method:      http.MethodGet,
		Path:        "/v1/broadcasts/{id}",
		Summary:     "Get a broadcast's progress",
		Description: "Targeted, created, delivered and failed counts. A key sees only the broadcasts it created. Needs scope broadcasts:write.",
		Tags:        []string{tagBroadcasts},
		Metadata:    scopes(auth.ScopeBroadcastsWrite),
		Errors:      []int{http.StatusNotFound},
	},
		func(ctx context.Context, in *getBroadcastInput) (*broadcastOutput, error) {
			key, _ := auth.APIKeyFromContext(ctx)
			ctx, cancel := h.dbctx(ctx)
			defer cancel()
			p, err := broadcast.Get(ctx, store.NewQueries(h.db), in.ID)
			if errors.Is(err, broadcast.ErrNotFound) || (err == nil && p.APIKeyID != key.ID) {
				return nil, huma.Error404NotFound("no such broadcast")
			}
			if err != nil {
				return nil, h.fail(ctx, "getBroadcast", err)
			}
			return &broadcastOutput{Location: "/v1/broadcasts/" + p.ID, Body: progressView(p)}, nil
		})
}

func progressView(p broadcast.Progress) BroadcastProgress {
	aud, _ := p.Audience()
	return BroadcastProgress{
		ID: p.ID, State: p.State, Category: string(p.Category), Title: p.Title,
		Audience: BroadcastAudience{Kind: aud.Kind, Value: aud.Value, Doctors: aud.Doctors},
		Targeted: p.Targeted, Created: p.Created, Delivered: p.Delivered, Failed: p.Failed,
		CreatedAt: p.CreatedAt.UTC(), StartedAt: utcPtr(p.StartedAt), CompletedAt: utcPtr(p.CompletedAt),
	}
}
