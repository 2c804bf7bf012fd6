// Wrapper module that builds the real Mattermost server from the Go module proxy
// (scripts/real_mattermost.py copies this file and go.sum into its cache and runs
// `go build github.com/mattermost/mattermost/server/v8/cmd/mattermost` there).
// server/v8 and server/public are pinned at the same upstream commit
// 9e1d4c2072c08ec08828317a277427ecac71f136 (master, 2026-01-13; reports 11.4.0).
// The replace line is copied from that commit's server/go.mod (a dependency's
// replace lines are ignored); that go.mod has no exclude block.
module mattermost-notify.local/real-server

go 1.24.11

require (
	github.com/mattermost/mattermost/server/public v0.1.22-0.20260113165922-8e4cadbc88ee
	github.com/mattermost/mattermost/server/v8 v8.0.0-20260113162330-9e1d4c2072c0
)

replace github.com/olekukonko/tablewriter => github.com/olekukonko/tablewriter v0.0.5
