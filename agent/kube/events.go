package kube

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// Component is the source component of the agent's Events.
const Component = "ecklink-agent"

// maxEventMessage bounds Event messages; longer ones are cut (the events API caps notes at 1 KiB).
const maxEventMessage = 1024

// RecorderConfig configures NewRecorder.
type RecorderConfig struct {
	// Kube is the client the Events are written with (core/v1 Events). Required.
	Kube kubernetes.Interface
	// Component is the Events' source component; Component if empty.
	Component string
}

// Recorder writes Kubernetes Events about the agent's resources.
//
// Event messages are shown to anyone who may read Events in the namespace: callers pass only
// sanitized messages, never secret material (API key values, encoded credentials, private keys,
// tokens). The recorder cannot tell a secret from other text and does not try to.
type Recorder struct {
	recorder    record.EventRecorder
	broadcaster record.EventBroadcaster
}

// NewRecorder starts an Event broadcaster that writes to the API server. Shutdown stops it.
func NewRecorder(ctx context.Context, cfg RecorderConfig) (*Recorder, error) {
	if cfg.Kube == nil {
		return nil, errors.New("failed to create event recorder: Kube is required")
	}
	if cfg.Component == "" {
		cfg.Component = Component
	}
	b := record.NewBroadcaster(record.WithContext(ctx), record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: eventCacheSize}))
	b.StartRecordingToSink(createOnlySink{&typedcorev1.EventSinkImpl{Interface: cfg.Kube.CoreV1().Events("")}})
	return &Recorder{
		recorder:    b.NewRecorder(Scheme, corev1.EventSource{Component: cfg.Component}),
		broadcaster: b,
	}, nil
}

// eventCacheSize is how many recent Events the broadcaster remembers to aggregate repeats and
// to filter spam, per cache (it keeps three). client-go's default, 4,096, held ~3.5 MB of an
// agent's 21 MB live heap at 1,000 links (condition transitions of every link as it connects).
// The objects whose Events repeat are the recent ones, which a smaller cache keeps too.
const eventCacheSize = 256

// createOnlySink writes every Event with create. The broadcaster turns a repeated Event into a
// patch of the first one's count; here it becomes a new Event with the count so far. The agent
// then needs only the create verb on Events, and cannot change Events of anyone else (RBAC
// cannot limit patch to one's own Events). The broadcaster's spam filter bounds the repeats.
type createOnlySink struct{ sink record.EventSink }

func (s createOnlySink) Create(e *corev1.Event) (*corev1.Event, error) { return s.sink.Create(e) }

func (s createOnlySink) Update(e *corev1.Event) (*corev1.Event, error) { return s.Patch(e, nil) }

func (s createOnlySink) Patch(e *corev1.Event, _ []byte) (*corev1.Event, error) {
	fresh := e.DeepCopy()
	fresh.Name = fmt.Sprintf("%s.%x", e.InvolvedObject.Name, time.Now().UnixNano())
	fresh.ResourceVersion = ""
	return s.sink.Create(fresh)
}

// NewRecorderFor wraps an existing EventRecorder, e.g. a record.FakeRecorder in tests.
func NewRecorderFor(r record.EventRecorder) *Recorder {
	return &Recorder{recorder: r}
}

// Shutdown stops the broadcaster; Events not yet written may be lost.
func (r *Recorder) Shutdown() {
	if r.broadcaster != nil {
		r.broadcaster.Shutdown()
	}
}

// Event records an Event of type corev1.EventTypeNormal or corev1.EventTypeWarning about obj.
// The message must be sanitized (see Recorder).
func (r *Recorder) Event(obj runtime.Object, eventType, reason, message string) {
	if len(message) > maxEventMessage {
		n := maxEventMessage - len("...")
		for n > 0 && !utf8.RuneStart(message[n]) {
			n--
		}
		message = message[:n] + "..."
	}
	r.recorder.Event(obj, eventType, reason, message)
}

// ConditionChanged records the Event for a condition that transitioned (see SetCondition and
// Transitions): Normal when it became True, Warning when it became False or Unknown, since every
// ecklink condition has positive polarity. The reason is the condition's reason.
func (r *Recorder) ConditionChanged(obj runtime.Object, c metav1.Condition) {
	eventType := corev1.EventTypeWarning
	if c.Status == metav1.ConditionTrue {
		eventType = corev1.EventTypeNormal
	}
	message := fmt.Sprintf("%s is %s", c.Type, c.Status)
	if c.Message != "" {
		message += ": " + c.Message
	}
	r.Event(obj, eventType, c.Reason, message)
}

// RecordTransitions records ConditionChanged for every condition of after whose status or
// reason differs from before (see Transitions). Call it once the status holding after is stored.
func (r *Recorder) RecordTransitions(obj runtime.Object, before, after []metav1.Condition) {
	for _, c := range Transitions(before, after) {
		r.ConditionChanged(obj, c)
	}
}
