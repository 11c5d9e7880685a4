//go:build !(linux && amd64)

package handoff

func teardown() {}
