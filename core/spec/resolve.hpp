// Resolution of spec values against the host: the only part of turning a
// document into a spec that reads the filesystem, the environment, open
// descriptors or the process's limits. Each function rewrites one key's
// value in the document into its resolved form, so that the resolved
// document is what a daemon records and recovers from without the host.
#pragma once

#include <nlohmann/json.hpp>

#include "core/spec/keys.hpp"

namespace nucleus::core::spec_resolve {

using nlohmann::json;

// An existing host directory, made absolute and canonical (symlinks
// resolved now, so what is checked is what is mounted).
Status host_dir(json& document, const SpecKey& key, const ResolveContext& context);
// The rootfs: host_dir, not "/", and searchable by the sandbox's setup ids.
Status rootfs_dir(json& document, const SpecKey& key, const ResolveContext& context);
// Entries "SRC:REST" whose SRC is a host path made canonical.
Status volume_sources(json& document, const SpecKey& key, const ResolveContext& context);
Status secret_sources(json& document, const SpecKey& key, const ResolveContext& context);
// --env-file: read, and its lines put before the -e entries; the key goes.
Status env_files(json& document, const SpecKey& key, const ResolveContext& context);
// -e KEY without a value: the host's value, or dropped (Docker's rule).
Status env_from_host(json& document, const SpecKey& key, const ResolveContext& context);
// --env-fd: read the descriptor's JSON object now.
Status env_fd(json& document, const SpecKey& key, const ResolveContext& context);
// Policies: {"path", "content"} with the content read and its pin checked
// (`<key>_sha256`); an inline {"content"} is checked against the pin too.
Status policy_file(json& document, const SpecKey& key, const ResolveContext& context);
// --ulimit: a hard limit the runtime cannot grant is refused here.
Status ulimits(json& document, const SpecKey& key, const ResolveContext& context);
// --io-max: a block device path becomes MAJ:MIN.
Status io_devices(json& document, const SpecKey& key, const ResolveContext& context);
// Host paths the supervisor writes (log_dir, events_jsonl, audit_log,
// seccomp_log): made absolute; their directory must exist.
Status output_path(json& document, const SpecKey& key, const ResolveContext& context);
// events_fd: an open descriptor.
Status open_descriptor(json& document, const SpecKey& key, const ResolveContext& context);

}  // namespace nucleus::core::spec_resolve
