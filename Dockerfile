# The rfd binary: a static build on a distroless base, running as non-root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/rfd .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rfd /usr/local/bin/rfd
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/rfd"]
CMD ["serve"]
