package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/store"
)

// Covering is the doctor covering for the authenticated doctor: once that
// doctor has accepted, and while the cover applies, they receive a copy of
// each of this doctor's notifications (its on_behalf_of is this doctor's id).
type Covering struct {
	ID               string    `json:"id" doc:"The delegation's id." example:"3f0d6a0e-5b1c-4f7e-9c1e-6b8f2a7d4c10"`
	DoctorID         string    `json:"doctor_id" doc:"The covering doctor's id." example:"9a7c1e0b-2d4f-5b6a-8c3e-1f0a2b3c4d5e"`
	DoctorExternalID string    `json:"doctor_external_id" doc:"The covering doctor's user id in user management." example:"usr-10077"`
	DoctorName       string    `json:"doctor_name" example:"Dr. Malee Chaiyaporn"`
	StartsAt         time.Time `json:"starts_at" example:"2026-12-01T00:00:00Z"`
	EndsAt           time.Time `json:"ends_at" example:"2026-12-15T00:00:00Z"`
	Status           string    `json:"status" enum:"pending,accepted,declined" doc:"pending until the covering doctor accepts (or an operator approves); only an accepted cover sends them anything." example:"pending"`
	Active           bool      `json:"active" doc:"Whether the cover applies now: accepted, and started." example:"false"`
}

// CoveringRequest names the doctor who covers for the authenticated doctor
// and when.
type CoveringRequest struct {
	_                struct{}  `nullable:"true"`
	DoctorID         string    `json:"doctor_id,omitempty" doc:"The covering doctor's id; give it or doctor_external_id." example:"9a7c1e0b-2d4f-5b6a-8c3e-1f0a2b3c4d5e"`
	DoctorExternalID string    `json:"doctor_external_id,omitempty" doc:"The covering doctor's user id in user management; give it or doctor_id." example:"usr-10077"`
	StartsAt         time.Time `json:"starts_at" doc:"When the cover starts." example:"2026-12-01T00:00:00Z"`
	EndsAt           time.Time `json:"ends_at" doc:"When the cover ends; after starts_at, in the future, and at most RFD_COVERING_MAX_DAYS (30 by default) after the later of starts_at and now." example:"2026-12-15T00:00:00Z"`
}

// CoveringChange is the covering field of a preferences patch: absent keeps
// the cover, null ends the current or future cover, and an object replaces
// it.
type CoveringChange struct {
	// Set is whether the field was present (null included).
	Set bool
	// Value is the new cover; nil with Set ends it.
	Value *CoveringRequest
}

// UnmarshalJSON records that the field was present, also when null.
func (c *CoveringChange) UnmarshalJSON(b []byte) error {
	c.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		c.Value = nil
		return nil
	}
	var v CoveringRequest
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	c.Value = &v
	return nil
}

// MarshalJSON writes the cover, or null.
func (c CoveringChange) MarshalJSON() ([]byte, error) {
	if c.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(c.Value)
}

// Schema is CoveringRequest's, which accepts null.
func (CoveringChange) Schema(r huma.Registry) *huma.Schema {
	return r.Schema(reflect.TypeFor[CoveringRequest](), true, "")
}

// changeCovering applies a covering change for doc at now within tx: the
// doctor's current cover ends now and future ones are removed; then the
// new one, if any, is stored, pending the covering doctor's acceptance.
// Past covers are kept as history. Both the request and its end are
// audited.
func (h *service) changeCovering(ctx context.Context, tx bun.Tx, doc domain.Doctor, c CoveringChange, now time.Time) error {
	if !c.Set {
		return nil
	}
	q := store.NewQueries(tx)
	var row *store.Delegation
	if c.Value != nil {
		var err error
		if row, err = newDelegation(ctx, q, doc, *c.Value, now, h.coveringMax); err != nil {
			return err
		}
		same, err := sameCover(ctx, q, row, now)
		if err != nil || same {
			return err // the cover asked for stands as it is, accepted or not
		}
	}
	if err := q.DelegationEndCurrent(ctx, &store.DelegationEndCurrentParams{DoctorID: doc.ID, At: now}); err != nil {
		return err
	}
	if err := q.DelegationDeleteFuture(ctx, &store.DelegationDeleteFutureParams{DoctorID: doc.ID, At: now}); err != nil {
		return err
	}
	if row == nil {
		return h.audit(ctx, tx, "covering.end", "doctor", doc.ID, outcomeSuccess, nil)
	}
	if err := q.DelegationInsert(ctx, row); err != nil {
		return err
	}
	return h.audit(ctx, tx, "covering.request", "delegation", row.ID, outcomeSuccess, map[string]any{
		"doctor_id": doc.ID, "covering_doctor_id": row.CoveringDoctorID,
		"starts_at": row.StartsAt.Format(time.RFC3339), "ends_at": row.EndsAt.Format(time.RFC3339),
	})
}

// sameCover reports whether row asks for the cover doc already has, pending
// or accepted: a client re-sending its preferences unchanged must not end
// an accepted cover and ask the colleague again.
func sameCover(ctx context.Context, q *store.Queries, row *store.Delegation, now time.Time) (bool, error) {
	current, err := q.DelegationListLive(ctx, &store.DelegationListLiveParams{
		DoctorID: row.DoctorID, CoveringDoctorID: row.CoveringDoctorID, At: now})
	if err != nil {
		return false, err
	}
	for _, d := range current {
		started := !d.StartsAt.After(now) && !row.StartsAt.After(now)
		if d.EndsAt.Equal(row.EndsAt) && (started || d.StartsAt.Equal(row.StartsAt)) {
			return true, nil
		}
	}
	return false, nil
}

// newDelegation validates req for doc: one of doctor_id and
// doctor_external_id, an active doctor other than doc, ends_at after
// starts_at and after now, and no longer than maxPeriod from the later of
// starts_at and now. Refusals are 422 at the failing field.
func newDelegation(ctx context.Context, q *store.Queries, doc domain.Doctor, req CoveringRequest, now time.Time, maxPeriod time.Duration) (*store.Delegation, error) {
	invalid := func(loc, msg string) error {
		return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Message: msg, Location: "body.covering." + loc})
	}
	var (
		cov   domain.Doctor
		field string
		err   error
	)
	switch {
	case req.DoctorID != "" && req.DoctorExternalID != "":
		return nil, invalid("doctor_id", "give doctor_id or doctor_external_id, not both")
	case req.DoctorID != "":
		field = "doctor_id"
		cov, err = q.DoctorGetByID(ctx, req.DoctorID)
	case req.DoctorExternalID != "":
		field = "doctor_external_id"
		cov, err = q.DoctorGetByExternalID(ctx, req.DoctorExternalID)
	default:
		return nil, invalid("doctor_id", "the covering doctor is required: give doctor_id or doctor_external_id")
	}
	found := err == nil
	if errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("load covering doctor: %w", err)
	}
	switch {
	case !found:
		return nil, invalid(field, "no such doctor")
	case cov.ID == doc.ID:
		return nil, invalid(field, "a doctor cannot cover for themself")
	case !cov.Active:
		return nil, invalid(field, "the covering doctor is not active")
	}
	start, end := req.StartsAt.UTC().Truncate(time.Microsecond), req.EndsAt.UTC().Truncate(time.Microsecond)
	if !end.After(start) {
		return nil, invalid("ends_at", "ends_at must be after starts_at")
	}
	if !end.After(now) {
		return nil, invalid("ends_at", "ends_at must be in the future")
	}
	if tooLong(start, end, now, maxPeriod) {
		return nil, invalid("ends_at", fmt.Sprintf("a cover lasts at most %d days", int(maxPeriod/(24*time.Hour))))
	}
	return &store.Delegation{ID: uuid.NewString(), DoctorID: doc.ID, CoveringDoctorID: cov.ID,
		StartsAt: start, EndsAt: end, CreatedAt: now, Status: domain.CoverPending}, nil
}

// tooLong reports whether a cover from start to end lasts longer than
// maxPeriod from when it takes effect: start, or now if that is later.
func tooLong(start, end, now time.Time, maxPeriod time.Duration) bool {
	return end.Sub(later(start, now)) > maxPeriod
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// coveringOf is doctorID's current cover, or else the next one; nil when
// there is none.
func coveringOf(ctx context.Context, q *store.Queries, doctorID string, now time.Time) (*Covering, error) {
	row, err := q.DelegationGetNext(ctx, &store.DelegationGetNextParams{DoctorID: doctorID, At: now})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cov, err := q.DoctorGetByID(ctx, row.CoveringDoctorID)
	if err != nil {
		return nil, fmt.Errorf("load covering doctor: %w", err)
	}
	return &Covering{
		ID: row.ID, DoctorID: cov.ID, DoctorExternalID: cov.ExternalUserID, DoctorName: cov.Name,
		StartsAt: row.StartsAt.UTC(), EndsAt: row.EndsAt.UTC(), Status: row.Status,
		Active: row.Status == domain.CoverAccepted && !row.StartsAt.After(now),
	}, nil
}

// tagCovering groups the covering doctor's and the operators' operations
// on covers.
const tagCovering = "Covering"

// CoverRequest is a cover as the covering doctor (or an operator) sees it:
// who asks to be covered, when, and whether it was accepted.
type CoverRequest struct {
	ID               string     `json:"id" doc:"The cover's id." example:"3f0d6a0e-5b1c-4f7e-9c1e-6b8f2a7d4c10"`
	DoctorID         string     `json:"doctor_id" doc:"The doctor asking to be covered." example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	DoctorExternalID string     `json:"doctor_external_id" example:"usr-10042"`
	DoctorName       string     `json:"doctor_name" example:"Dr. Anan Srisuk"`
	CoveringDoctorID string     `json:"covering_doctor_id" doc:"The doctor asked to cover." example:"9a7c1e0b-2d4f-5b6a-8c3e-1f0a2b3c4d5e"`
	StartsAt         time.Time  `json:"starts_at" example:"2026-12-01T00:00:00Z"`
	EndsAt           time.Time  `json:"ends_at" example:"2026-12-15T00:00:00Z"`
	Status           string     `json:"status" enum:"pending,accepted,declined" doc:"Only an accepted cover sends the covering doctor copies." example:"pending"`
	Active           bool       `json:"active" doc:"Whether the cover applies now: accepted, and started." example:"false"`
	RequestedAt      time.Time  `json:"requested_at" example:"2026-11-25T03:00:00Z"`
	DecidedAt        *time.Time `json:"decided_at,omitempty" doc:"When it was accepted, approved or declined." example:"2026-11-25T04:00:00Z"`
}

type coverRequestsOutput struct {
	Body struct {
		Items []CoverRequest `json:"items" doc:"Covers asked of the authenticated doctor that have not ended, by start."`
	}
}

type coverRequestInput struct {
	ID string `path:"id" maxLength:"100" doc:"The cover's id." example:"3f0d6a0e-5b1c-4f7e-9c1e-6b8f2a7d4c10"`
}

type coverRequestOutput struct {
	Body CoverRequest
}

func registerCovering(doctor, operator *huma.Group, h *service) {
	oapi := doctor.OpenAPI()
	if !hasTag(oapi, tagCovering) {
		oapi.Tags = append(oapi.Tags, &huma.Tag{Name: tagCovering, Description: "Covers between doctors need the covering doctor's consent: " +
			"a cover a doctor asks for (PATCH /v1/me/preferences) sends the covering doctor nothing until they accept it, or an operator approves it. " +
			"Requests, acceptances, approvals and declines are audited."})
	}
	huma.Register(doctor, huma.Operation{
		OperationID: "listCoveringRequests",
		Method:      http.MethodGet,
		Path:        "/v1/me/covering-requests",
		Summary:     "List covers asked of me",
		Description: "The covers other doctors asked the authenticated doctor to take on that have not ended: pending, accepted or declined.",
		Tags:        []string{tagCovering},
	}, h.listCoverRequests)
	huma.Register(doctor, huma.Operation{
		OperationID: "getCoveringRequest",
		Method:      http.MethodGet,
		Path:        "/v1/me/covering-requests/{id}",
		Summary:     "Get a cover asked of me",
		Description: "One cover asked of the authenticated doctor; any other cover is 404.",
		Tags:        []string{tagCovering},
		Errors:      []int{http.StatusNotFound},
	}, h.getCoverRequest)
	huma.Register(doctor, huma.Operation{
		OperationID: "acceptCoveringRequest",
		Method:      http.MethodPost,
		Path:        "/v1/me/covering-requests/{id}/accept",
		Summary:     "Accept a cover",
		Description: "The authenticated doctor accepts to cover: from starts_at (or now) to ends_at they receive a copy of each of the other doctor's " +
			"notifications, patient detail included. Accepting again changes nothing. A declined or ended cover, or one longer than " +
			"RFD_COVERING_MAX_DAYS from now, is 409. Audited.",
		Tags:   []string{tagCovering},
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, h.acceptCoverRequest)
	huma.Register(doctor, huma.Operation{
		OperationID: "declineCoveringRequest",
		Method:      http.MethodPost,
		Path:        "/v1/me/covering-requests/{id}/decline",
		Summary:     "Decline a cover",
		Description: "The authenticated doctor declines to cover, or withdraws an acceptance: from now on they receive nothing for the other doctor. " +
			"An ended cover is 409. Audited.",
		Tags:   []string{tagCovering},
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, h.declineCoverRequest)
	huma.Register(operator, huma.Operation{
		OperationID: "approveCovering",
		Method:      http.MethodPost,
		Path:        "/v1/admin/covering/{id}/approve",
		Summary:     "Approve a cover",
		Description: "An operator accepts a cover in place of the covering doctor, with the same rules as acceptCoveringRequest. Audited. " +
			"Needs scope covering:approve.",
		Tags:     []string{tagCovering},
		Metadata: scopes(auth.ScopeCoveringApprove),
		Errors:   []int{http.StatusNotFound, http.StatusConflict},
	}, h.approveCover)
}

func (h *service) listCoverRequests(ctx context.Context, _ *struct{}) (*coverRequestsOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	now := h.now().UTC()
	q := store.NewQueries(h.db)
	rows, err := q.DelegationListForCovering(ctx, &store.DelegationListForCoveringParams{
		CoveringDoctorID: doc.ID, At: now, Limit: MaxPageSize})
	if err != nil {
		return nil, h.fail(ctx, "listCoveringRequests", err)
	}
	out := &coverRequestsOutput{}
	out.Body.Items = make([]CoverRequest, 0, len(rows))
	for _, r := range rows {
		v, err := coverRequestOf(ctx, q, r, now)
		if err != nil {
			return nil, h.fail(ctx, "listCoveringRequests", err)
		}
		out.Body.Items = append(out.Body.Items, v)
	}
	return out, nil
}

func (h *service) getCoverRequest(ctx context.Context, in *coverRequestInput) (*coverRequestOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	q := store.NewQueries(h.db)
	row, err := q.DelegationGet(ctx, &store.DelegationGetParams{ID: in.ID, CoveringDoctorID: doc.ID})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoCover()
	}
	if err != nil {
		return nil, h.fail(ctx, "getCoveringRequest", err)
	}
	v, err := coverRequestOf(ctx, q, *row, h.now().UTC())
	if err != nil {
		return nil, h.fail(ctx, "getCoveringRequest", err)
	}
	return &coverRequestOutput{Body: v}, nil
}

func (h *service) acceptCoverRequest(ctx context.Context, in *coverRequestInput) (*coverRequestOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	return h.decideCover(ctx, "acceptCoveringRequest", in.ID, doc.ID, domain.CoverAccepted, "covering.accept")
}

func (h *service) declineCoverRequest(ctx context.Context, in *coverRequestInput) (*coverRequestOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	return h.decideCover(ctx, "declineCoveringRequest", in.ID, doc.ID, domain.CoverDeclined, "covering.decline")
}

func (h *service) approveCover(ctx context.Context, in *coverRequestInput) (*coverRequestOutput, error) {
	if _, err := apiKeyOf(ctx); err != nil {
		return nil, err
	}
	return h.decideCover(ctx, "approveCovering", in.ID, "", domain.CoverAccepted, "covering.approve")
}

func errNoCover() error { return huma.Error404NotFound("no such cover") }

// decideCover moves cover id to status (accepted or declined) and audits
// action. coveringDoctorID, when set, is the doctor deciding: a cover
// asked of anyone else is 404. An acceptance is checked again against the
// cap, which may have been lowered, or the cover made before it existed.
func (h *service) decideCover(ctx context.Context, op, id, coveringDoctorID, status, action string) (*coverRequestOutput, error) {
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	now := h.now().UTC().Truncate(time.Microsecond)
	c := callerOf(ctx)
	var out CoverRequest
	err := h.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := store.NewQueries(tx)
		stored, err := q.DelegationGet(ctx, &store.DelegationGetParams{ID: id, CoveringDoctorID: coveringDoctorID})
		if errors.Is(err, store.ErrNotFound) {
			return errNoCover()
		}
		if err != nil {
			return err
		}
		row := *stored
		switch {
		case !row.EndsAt.After(now):
			return huma.Error409Conflict("the cover has ended")
		case row.Status == status:
			// Deciding the same again changes nothing.
			out, err = coverRequestOf(ctx, q, row, now)
			return err
		case status == domain.CoverAccepted && row.Status == domain.CoverDeclined:
			return huma.Error409Conflict("the cover was declined; the doctor must ask again")
		case status == domain.CoverAccepted && tooLong(row.StartsAt, row.EndsAt, now, h.coveringMax):
			return huma.Error409Conflict(fmt.Sprintf("the cover lasts longer than the %d days allowed; the doctor must ask for a shorter one",
				int(h.coveringMax/(24*time.Hour))))
		}
		decided, err := q.DelegationDecide(ctx, &store.DelegationDecideParams{
			ID: row.ID, From: row.Status, Status: status, DecidedAt: now, DecidedBy: c.actorType + ":" + c.actorID})
		if err != nil {
			return err
		}
		if !decided {
			return huma.Error409Conflict("the cover changed meanwhile; retry")
		}
		if err := h.audit(ctx, tx, action, "delegation", row.ID, outcomeSuccess, map[string]any{
			"doctor_id": row.DoctorID, "covering_doctor_id": row.CoveringDoctorID, "previous_status": row.Status,
		}); err != nil {
			return err
		}
		row.Status, row.DecidedAt, row.DecidedBy = status, &now, c.actorType+":"+c.actorID
		out, err = coverRequestOf(ctx, q, row, now)
		return err
	})
	if err != nil {
		return nil, h.fail(ctx, op, err)
	}
	return &coverRequestOutput{Body: out}, nil
}

// coverRequestOf is row as the covering doctor sees it.
func coverRequestOf(ctx context.Context, q *store.Queries, row store.Delegation, now time.Time) (CoverRequest, error) {
	doc, err := q.DoctorGetByID(ctx, row.DoctorID)
	if err != nil {
		return CoverRequest{}, fmt.Errorf("load covered doctor: %w", err)
	}
	return CoverRequest{
		ID: row.ID, DoctorID: doc.ID, DoctorExternalID: doc.ExternalUserID, DoctorName: doc.Name, CoveringDoctorID: row.CoveringDoctorID,
		StartsAt: row.StartsAt.UTC(), EndsAt: row.EndsAt.UTC(), Status: row.Status,
		Active: row.Status == domain.CoverAccepted && !row.StartsAt.After(now), RequestedAt: row.CreatedAt.UTC(), DecidedAt: utcPtr(row.DecidedAt),
	}, nil
}

// defaultCoveringMaxDays is RFD_COVERING_MAX_DAYS's default, for a
// configuration that does not set it (the spec-only API of `rfd openapi`).
const defaultCoveringMaxDays = 30

func coveringMax(cfg config.Config) time.Duration {
	days := cfg.CoveringMaxDays
	if days < 1 {
		days = defaultCoveringMaxDays
	}
	return time.Duration(days) * 24 * time.Hour
}
