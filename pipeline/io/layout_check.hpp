// Checking an HDF5 file against a machine-readable layout (the "h5_layouts" of
// schemas/*.schema.json, embedded in every binary).
//
// Layout format:
//   {"schema": S, "version": V,     optional: the root attributes schema / version must equal them
//    "datasets": {PATH: {"shape": [DIM, ...], "dtype": T or [T, ...], "optional": bool,
//                        "chunked": bool, "fletcher32": bool, "virtual": bool, "description": text}},
//    "attributes": {NAME: KIND or {"type": KIND, "optional": bool, "const": value,
//                                  "enum": [value, ...], "description": text}}}
// PATH is relative to the root; "group/*" stands for every dataset in that group (at least one
// unless optional). DIM is a non-negative integer or a symbol: a symbol takes the value of the
// root's integer attribute of the same name if there is one, else the first size it meets, and
// must then agree everywhere. T: float32 float64 float16 bfloat16 int32 int64 uint8.
// KIND: string int64 float64 int64[] float64[] (int64 accepts any integer type, float64 any
// number). "chunked"/"fletcher32"/"virtual": true requires that storage. Other members
// (description, $comment) are documentation.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace saepipe {

// User error naming the file, the dataset or attribute, and what is wrong; internal error if
// the layout itself is malformed.
void check_h5_layout(const std::string& h5_path, const nlohmann::json& layout);

// Layout `name` from the embedded schema file `schema_file`, e.g.
// embedded_h5_layout("sae.schema.json", "sae.h5").
nlohmann::json embedded_h5_layout(const std::string& schema_file, const std::string& name);

}  // namespace saepipe
