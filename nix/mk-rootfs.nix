# lib.mkRootfs: a Nix store closure as a sandbox's root filesystem, for
# `nucleus run --rootfs-closure MANIFEST`. No image and no layers: the
# result is one JSON file in the store, the closure's manifest (the store
# paths with their NAR hashes, sizes and references, the entry point and the
# environment; core/closure_manifest.hpp describes it). At run time the
# store is bound read-only and Landlock lets the workload read and execute
# only the paths the manifest lists.
#
# How: the closure comes from Nix itself, through exportReferencesGraph with
# structured attributes, the mechanism nixpkgs' closureInfo is built on
# (closureInfo then turns the same JSON into text with jq). Here the builder
# is `nucleus rootfs closure-manifest`, which reads the builder's
# .attrs.json directly, so the whole derivation needs nothing from nixpkgs
# but the nucleus package; the tests build it that way in a throw-away store.
#
# Arguments: nucleus (a derivation or store path with bin/nucleus), and the
# system to build for (default: nucleus's).
{ nucleus, system ? nucleus.system or "x86_64-linux" }:

{ name
, contents                  # derivations (or store paths) the root holds, with their closures
, entrypoint ? null         # the default command: a path, or a list of arguments
, env ? { }                 # environment variables; PATH defaults to every content's bin/
}:

let
  entrypointList =
    if entrypoint == null then null
    else if builtins.isList entrypoint then map toString entrypoint
    else [ (toString entrypoint) ];
  defaultPath = builtins.concatStringsSep ":" (map (p: "${p}/bin") contents);
  environment = { PATH = defaultPath; } // builtins.mapAttrs (_: toString) env;
in
derivation {
  name = "${name}-closure.json";
  inherit system;
  builder = "${nucleus}/bin/nucleus";
  args = [ "rootfs" "closure-manifest" ];
  __structuredAttrs = true;
  exportReferencesGraph.closure = contents;
  manifest = {
    inherit name;
    storeDir = builtins.storeDir;
    roots = map toString contents;
    entrypoint = entrypointList;
    env = environment;
  };
  preferLocalBuild = true;
  allowSubstitutes = false;
}
