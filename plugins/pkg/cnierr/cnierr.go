// Package cnierr builds CNI error values with the spec's codes, so every
// plugin reports the same failure the same way and runtimes can act on the code.
package cnierr

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// Spec codes (CNI SPEC "Error" section). Codes 0-99 are reserved by the spec.
const (
	IncompatibleVersion = types.ErrIncompatibleCNIVersion      // 1
	UnsupportedField    = types.ErrUnsupportedField            // 2
	UnknownContainer    = types.ErrUnknownContainer            // 3
	InvalidEnvironment  = types.ErrInvalidEnvironmentVariables // 4
	IOFailure           = types.ErrIOFailure                   // 5
	DecodingFailure     = types.ErrDecodingFailure             // 6
	InvalidConfig       = types.ErrInvalidNetworkConfig        // 7
	TryAgainLater       = types.ErrTryAgainLater               // 11
	PluginNotAvailable  = types.ErrPluginNotAvailable          // 50
	LimitedConnectivity = types.ErrLimitedConnectivity         // 51
	Internal            = types.ErrInternal                    // 999
)

func newf(code uint, format string, args ...any) *types.Error {
	return types.NewError(code, fmt.Sprintf(format, args...), "")
}

// Config reports a network configuration the plugin cannot use (code 7).
func Config(format string, args ...any) *types.Error { return newf(InvalidConfig, format, args...) }

// Decode reports JSON that does not parse (code 6).
func Decode(format string, args ...any) *types.Error { return newf(DecodingFailure, format, args...) }

// Env reports a bad CNI_* environment variable or argument (code 4).
func Env(format string, args ...any) *types.Error { return newf(InvalidEnvironment, format, args...) }

// IO reports a failed read or write of the plugin's own state (code 5).
func IO(format string, args ...any) *types.Error { return newf(IOFailure, format, args...) }

// TryAgain reports a condition that may clear by itself, such as an
// exhausted address range that frees up when containers stop (code 11).
func TryAgain(format string, args ...any) *types.Error { return newf(TryAgainLater, format, args...) }

// Unavailable is STATUS's answer when the plugin cannot serve an ADD now,
// such as a netfilter backend that does not run (code 50).
func Unavailable(format string, args ...any) *types.Error {
	return newf(PluginNotAvailable, format, args...)
}

// Limited is STATUS's answer when, besides, containers already attached
// depend on what does not work (code 51): their rules cannot be repaired
// or removed.
func Limited(format string, args ...any) *types.Error {
	return newf(LimitedConnectivity, format, args...)
}

// Drift is CHECK's answer when an attachment differs from what ADD made: a
// link, address or rule missing or changed. The spec has no code of its own
// for it; 999 is libcni's code for a failure of the plugin's own making.
func Drift(format string, args ...any) *types.Error { return newf(Internal, format, args...) }

// Wrap keeps a *types.Error as it is and gives anything else an internal code,
// prefixed with what was being done.
func Wrap(err error, doing string) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*types.Error); ok {
		return e
	}
	return types.NewError(Internal, doing+": "+err.Error(), "")
}
