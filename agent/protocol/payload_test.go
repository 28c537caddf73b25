package protocol

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestWrapCoversEveryPayload: every payload of Update but the stream's own (Removed, Inventory)
// is wrapped into its own oneof field, so a payload added to peer.proto fails here until Wrap
// knows it.
func TestWrapCoversEveryPayload(t *testing.T) {
	stream := map[protoreflect.Name]bool{"removed": true, "inventory": true}
	fields := (&peerv1.Update{}).ProtoReflect().Descriptor().Oneofs().ByName("payload").Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if stream[f.Name()] {
			continue
		}
		mt, err := protoregistry.GlobalTypes.FindMessageByName(f.Message().FullName())
		if err != nil {
			t.Fatal(err)
		}
		payload := mt.New().Interface()
		u, err := Wrap("r", payload)
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		if got := u.ProtoReflect().WhichOneof(f.ContainingOneof()); got != f || u.GetResource() != "r" {
			t.Fatalf("%s: wrapped into %v, resource %q", f.Name(), got, u.GetResource())
		}
	}
	for _, p := range []proto.Message{&peerv1.Removed{}, &peerv1.Inventory{}, &peerv1.Ack{}, dynamicpb.NewMessage(fields.Get(0).Message())} {
		if _, err := Wrap("r", p); err == nil {
			t.Fatalf("Wrap(%T) succeeded", p)
		}
	}
}
