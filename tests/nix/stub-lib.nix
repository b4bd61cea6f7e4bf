# Test fixture, not part of the product: the few nixpkgs `lib` functions
# that nix/module.nix and nix/render.nix call, written from their documented
# behaviour, so that the module's options and rendering can be evaluated
# with `nix-instantiate --eval --strict` on a machine without nixpkgs
# (tests/nix/module-eval.nix). Option types carry a `check` and
# applyOptions fills defaults and type-checks values, standing in for
# lib.evalModules for this one module (no merging of definitions, no
# priorities: one definition per option is all the test gives).
let
  inherit (builtins) all attrNames attrValues concatStringsSep elem filter foldl' isAttrs isBool isInt isList
    isString isPath isFunction listToAttrs mapAttrs match replaceStrings;

  mkType = name: check: extra: { _type = "type"; inherit name check; } // extra;

  types = rec {
    bool = mkType "bool" isBool { };
    str = mkType "str" isString { };
    int = mkType "int" isInt { };
    path = mkType "path" (v: isPath v || (isString v && match "/.*" v != null)) { };
    package = mkType "package" (v: (isAttrs v && v ? outPath) || (isString v && match "/.*" v != null)) { };
    enum = values: mkType "enum" (v: elem v values) { };
    nullOr = t: mkType "nullOr ${t.name}" (v: v == null || t.check v) { inner = t; };
    listOf = t: mkType "listOf ${t.name}" (v: isList v && all t.check v) { inner = t; };
    attrsOf = t: mkType "attrsOf ${t.name}" (v: isAttrs v && all t.check (attrValues v)) { inner = t; };
    submodule = m: mkType "submodule" isAttrs { submodule = m; };
  };

  isOption = v: isAttrs v && (v._type or null) == "option";

  # Fills an option tree from user settings: a given value (type-checked)
  # or the default; a submodule's settings recursively.
  applyOptions = where: opts: given:
    let
      unknown = filter (n: !(opts ? ${n})) (attrNames given);
      one = name: opt:
        let here = "${where}.${name}"; in
        if isOption opt then
          let
            value = if given ? ${name} then given.${name}
              else if opt ? default then opt.default
              else throw "${here}: no value and no default";
          in applyType here opt.type value
        else applyOptions here opt (given.${name} or { });
    in
    if unknown != [ ] then throw "${where}: unknown option(s) ${concatStringsSep ", " unknown}"
    else mapAttrs one opts;

  applyType = here: type: value:
    let
      sub = type.inner or null;
      fill = t: name: v:
        if t ? submodule then
          let m = if isFunction t.submodule then t.submodule { inherit name; } else t.submodule;
          in applyOptions "${here}.${name}" m.options v
        else v;
    in
    if !(type.check value) then throw "${here}: ${builtins.toJSON value} is not a ${type.name}"
    else if sub != null && type.name == "attrsOf ${sub.name}" then mapAttrs (fill sub) value
    else fill type "" value;
in
{
  inherit types applyOptions;

  mkOption = attrs: { _type = "option"; } // attrs;
  mkEnableOption = what: { _type = "option"; type = types.bool; default = false; description = "Whether to enable ${what}."; };
  mkIf = cond: content: if cond then content else { };
  literalExpression = text: { _type = "literalExpression"; inherit text; };

  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: set: listToAttrs (map (n: f n set.${n}) (attrNames set));
  mapAttrsToList = f: set: map (n: f n set.${n}) (attrNames set);
  filterAttrs = pred: set: listToAttrs (map (n: { name = n; value = set.${n}; }) (filter (n: pred n set.${n}) (attrNames set)));
  optionalAttrs = cond: set: if cond then set else { };
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  inherit concatStringsSep;

  # As nixpkgs: unquoted when only safe characters, else single-quoted
  # with ' written as '\''.
  escapeShellArg = arg:
    let s = toString arg; in
    if match "[[:alnum:],._+:@%/-]+" s != null then s
    else "'${replaceStrings [ "'" ] [ "'\\''" ] s}'";
}
