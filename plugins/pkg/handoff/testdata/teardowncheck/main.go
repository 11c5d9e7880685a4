// Command teardowncheck prints a line and exits through handoff.Teardown,
// allowed when its first argument is "allow".
package main

import (
	"fmt"
	"os"

	"github.com/dockernet/cni-plugins/plugins/pkg/handoff"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "allow" {
		handoff.Allow()
	}
	fmt.Println("result")
	handoff.Teardown()
}
