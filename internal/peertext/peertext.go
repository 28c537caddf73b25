// Package peertext bounds text that comes from a peer before it reaches a log, a status, an
// Event or an error: printable characters only, valid UTF-8, and a length cap.
package peertext

import (
	"strings"
	"unicode"
)

// Length caps for peer text by destination.
const (
	// Status is the most a peer-supplied message takes in a status field or an Event.
	Status = 256
	// Log is the most a peer-supplied value takes in a log line.
	Log = 256
)

// Clean drops non-printable characters (newlines, ANSI escapes, invalid UTF-8) and clips s to
// at most max bytes, marking a cut with "...". The result is at most max+3 bytes.
func Clean(s string, max int) string {
	if len(s) > 4*max {
		s = s[:4*max] // bound the work on huge input before mapping it
	}
	s = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Printable reports whether s has only printable characters and is valid UTF-8.
func Printable(s string) bool {
	for _, r := range s {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
