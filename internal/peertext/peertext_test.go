package peertext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short text unchanged", "not connected", 256, "not connected"},
		{"control characters dropped", "a\nb\x1b[31mc\td", 256, "ab[31mcd"},
		{"invalid UTF-8 dropped", "ok\xff\xfe!", 256, "ok!"},
		{"clipped with a mark", strings.Repeat("x", 300), 10, "xxxxxxxxxx..."},
		{"clipped on a rune boundary", "ééééé", 5, "éé..."},
		{"huge input bounded", strings.Repeat("y", 1<<20), 8, "yyyyyyyy..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Clean(tt.in, tt.max)
			if got != tt.want {
				t.Fatalf("Clean = %q, want %q", got, tt.want)
			}
			if !utf8.ValidString(got) || len(got) > tt.max+3 {
				t.Fatalf("Clean = %q: invalid or longer than %d", got, tt.max+3)
			}
		})
	}
	if Printable("a\nb") || !Printable("élan 9.3.2") {
		t.Fatal("Printable misjudges")
	}
}
