package fuzzseed

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{name: "text", data: []byte("abc"), want: "go test fuzz v1\n[]byte(\"abc\")\n"},
		{name: "binary", data: []byte{0x00, 0xff, '"'}, want: "go test fuzz v1\n[]byte(\"\\x00\\xff\\\"\")\n"},
		{name: "empty", data: nil, want: "go test fuzz v1\n[]byte(\"\")\n"},
	}
	dir := filepath.Join(t.TempDir(), "testdata", "fuzz", "FuzzX")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Write(dir, tt.name, tt.data); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("seed file %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteProtos(t *testing.T) {
	dir := t.TempDir()
	seeds := map[string]*wrapperspb.StringValue{"a": wrapperspb.String("abc"), "empty": {}}
	if err := WriteProtos(dir, seeds); err != nil {
		t.Fatal(err)
	}
	for name, m := range seeds {
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"; string(got) != want {
			t.Errorf("seed %s = %q, want %q", name, got, want)
		}
	}
	if err := WriteAll(filepath.Join(dir, "raw"), map[string][]byte{"x": []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "raw", "x")); err != nil || string(got) != "go test fuzz v1\n[]byte(\"y\")\n" {
		t.Errorf("WriteAll seed = %q, %v", got, err)
	}
}
