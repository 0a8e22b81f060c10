module github.com/qpipe/qpipe

go 1.26.8

require github.com/google/flatbuffers v25.12.19+incompatible

require golang.org/x/text v0.44.0

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/rs/zerolog v1.35.1 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.29.0
)
