#include "coordinator/submit.h"

#include "common/bounded_parse.h"

extern char** environ;

namespace sd2::coordinator {

StatusOr<sweeps::ExpandOptions> ParseExpandFlags(const std::vector<std::string>& vars,
                                                 const std::string& scale_map,
                                                 const std::string& override_json) {
  sweeps::ExpandOptions o;
  // Environment variables define ${NAME} too (as in `sd2ctl validate`); --var wins.
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos && eq > 0) o.vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& v : vars) {
    auto eq = v.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgumentError("--var '" + v + "': expected NAME=VALUE");
    }
    o.vars[v.substr(0, eq)] = v.substr(eq + 1);
  }
  size_t pos = 0;
  while (pos < scale_map.size()) {
    size_t comma = scale_map.find(',', pos);
    std::string item =
        scale_map.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? scale_map.size() : comma + 1;
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      return InvalidArgumentError("--scale-map '" + item + "': expected FROM=TO");
    }
    auto from = sweeps::ParseScale(item.substr(0, eq));
    auto to = sweeps::ParseScale(item.substr(eq + 1));
    if (!from.ok()) return from.status().WithPrefix("--scale-map '" + item + "'");
    if (!to.ok()) return to.status().WithPrefix("--scale-map '" + item + "'");
    o.scale_map[*from] = *to;
  }
  if (!override_json.empty()) {
    auto j = ParseJsonBounded(override_json);
    if (!j.ok()) return j.status().WithPrefix("--override");
    if (!j->is_object()) {
      return InvalidArgumentError("--override: expected a JSON object, got '" + override_json +
                                  "'");
    }
    o.overrides = *std::move(j);
  }
  return o;
}

StatusOr<std::vector<sweeps::Trial>> ExpandFile(const std::string& sweep_path,
                                                const sweeps::ExpandOptions& options) {
  SD2_ASSIGN_OR_RETURN(sweeps::SweepSpec spec, sweeps::LoadSweepFile(sweep_path));
  return sweeps::Expand(spec, options);
}

StatusOr<protocol::Submit> BuildSubmit(const std::string& sweep_path,
                                       const sweeps::ExpandOptions& options, bool force) {
  SD2_ASSIGN_OR_RETURN(sweeps::SweepSpec spec, sweeps::LoadSweepFile(sweep_path));
  SD2_ASSIGN_OR_RETURN(std::vector<sweeps::Trial> trials, sweeps::Expand(spec, options));
  protocol::Submit s;
  s.name = spec.name.empty() ? sweep_path : spec.name;
  s.spec_path = sweep_path;
  s.spec_toml = spec.text;
  s.force = force;
  for (const auto& t : trials) {
    protocol::TrialSpec ts;
    ts.key = t.key;
    ts.method = t.method;
    ts.scale = t.scale;
    ts.seed = t.seed;
    ts.config = t.config;
    ts.resources = t.resources;
    ts.priority = t.priority;
    ts.depends_on = t.depends_on;
    ts.label = t.label;
    s.trials.push_back(std::move(ts));
  }
  return s;
}

}  // namespace sd2::coordinator
