// Package version holds the build's version, set by the linker:
// -ldflags "-X github.com/ecklink/ecklink/internal/version.Version=v0.1.0".
package version

import "runtime/debug"

// Version is the release version.
var Version = "0.2.0-dev"

// Commit is the VCS revision, when the build knows it.
func Commit() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}
