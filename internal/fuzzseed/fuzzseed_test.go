package fuzzseed

import (
	"os"
	"path/filepath"
	"testing"
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
