// compose-check loads a compose project the way Docker Compose does (compose-go: the compose specification's
// schema, env_file parsing, interpolation) and prints each service's resolved environment as JSON, so tests can
// check the rendered control node project with the parser that reads it on the node.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check <project-dir>/docker-compose.yml")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(
		[]string{os.Args[1]},
		cli.WithWorkingDirectory(""),
		cli.WithDotEnv,
		cli.WithName("confscale"),
	)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	project, err = project.WithServicesEnvironmentResolved(true)
	if err != nil {
		fail(err)
	}
	type service struct {
		Environment     map[string]*string `json:"environment"`
		StopGracePeriod *string            `json:"stop_grace_period,omitempty"`
	}
	services := map[string]service{}
	for name, definition := range project.Services {
		var grace *string
		if definition.StopGracePeriod != nil {
			text := definition.StopGracePeriod.String()
			grace = &text
		}
		services[name] = service{Environment: definition.Environment, StopGracePeriod: grace}
	}
	encoder := json.NewEncoder(os.Stdout)
	if err := encoder.Encode(map[string]any{"services": services}); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-check:", err)
	os.Exit(1)
}
