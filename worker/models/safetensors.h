// Reading and writing the safetensors format (Hugging Face): an 8-byte little-endian header
// length, a JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}, then the raw little-endian data. Torch-free; every field
// is validated (header length, JSON, dtypes, shapes against byte lengths, bounds, overlaps), and
// errors name the file and the tensor.
//
//   SD2_ASSIGN_OR_RETURN(SafetensorsFile f, ReadSafetensors("model.safetensors"));
//   const SafeTensor& t = f.tensors.at("logit_scale");   // t.dtype, t.shape, t.data (bytes)
//   std::vector<float> v = t.ToFloat();                  // F32/F16/BF16/I64/I32/U8 -> float
//   SafetensorsFile out; out.Add("x", Dtype::kF32, {2, 3}, floats.data());
//   SD2_RETURN_IF_ERROR(WriteSafetensors("out.safetensors", out));   // atomic
#ifndef SD2_WORKER_MODELS_SAFETENSORS_H_
#define SD2_WORKER_MODELS_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::worker::models {

enum class Dtype { kF32, kF16, kBF16, kF64, kI64, kI32, kU8 };
const char* DtypeName(Dtype d);  // "F32", ...
size_t DtypeSize(Dtype d);

struct SafeTensor {
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;
  std::string data;  // raw bytes, little-endian
  int64_t numel() const;
  std::vector<float> ToFloat() const;
  std::vector<int64_t> ToInt64() const;  // integer dtypes only (floats are truncated)
};

struct SafetensorsFile {
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;
  void Add(const std::string& name, Dtype dtype, std::vector<int64_t> shape, const void* data);
};

StatusOr<SafetensorsFile> ParseSafetensors(const std::string& bytes, const std::string& what);
StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path);
std::string SerializeSafetensors(const SafetensorsFile& file);
Status WriteSafetensors(const std::string& path, const SafetensorsFile& file);

}  // namespace sd2::worker::models

#endif  // SD2_WORKER_MODELS_SAFETENSORS_H_
