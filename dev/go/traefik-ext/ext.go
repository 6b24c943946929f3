// Package ext stands in for Traefik's github.com/traefik/traefik/dynamic/ext, a nested module
// that its go.mod replaces with a local folder the published module does not carry. Open-source
// Traefik declares these as empty extension points of its dynamic configuration.
package ext

// HTTP extends dynamic.HTTP; empty in open-source Traefik.
type HTTP struct{}

// Router extends dynamic.Router; empty in open-source Traefik.
type Router struct{}
