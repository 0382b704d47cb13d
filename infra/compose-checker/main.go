// Command compose-checker loads a Compose file with the Compose Specification's reference loader (compose-go,
// the library `docker compose` itself uses) and prints the resolved model, as `docker compose config` does.
// It exists so that docker-compose.yml is validated on machines without Docker:
//
//	compose-checker -f docker-compose.yml config --format json
//
// Variables come from the process environment (and a .env file beside the Compose file), interpolation errors
// such as `${VAR:?message}` with VAR unset are reported on stderr with a non-zero exit status.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "compose-checker:", err)
		os.Exit(1)
	}
}

// fileList collects repeated -f flags, in order, as `docker compose -f a.yml -f b.yml` does.
type fileList []string

func (f *fileList) String() string     { return fmt.Sprint([]string(*f)) }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func run(args []string) error {
	global := flag.NewFlagSet("compose-checker", flag.ContinueOnError)
	var files fileList
	global.Var(&files, "f", "Compose file (repeatable)")
	if err := global.Parse(args); err != nil {
		return err
	}
	rest := global.Args()
	if len(rest) == 0 || rest[0] != "config" {
		return errors.New("usage: compose-checker -f FILE [-f FILE...] config [--format json|yaml]")
	}
	configFlags := flag.NewFlagSet("config", flag.ContinueOnError)
	format := configFlags.String("format", "yaml", "output format: json or yaml")
	if err := configFlags.Parse(rest[1:]); err != nil {
		return err
	}
	if *format != "json" && *format != "yaml" {
		return fmt.Errorf("--format %q: expected json or yaml", *format)
	}

	options, err := cli.NewProjectOptions(
		files,
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}
	var out []byte
	if *format == "json" {
		out, err = project.MarshalJSON()
	} else {
		out, err = project.MarshalYAML()
	}
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(out, '\n'))
	return err
}
