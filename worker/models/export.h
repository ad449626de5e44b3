// `sd2-worker export-clip`: turns a trained trial's checkpoint into a Hugging Face CLIP folder
// that any method reads through hparams.pretrained (and transformers' CLIPModel too). Torch-free
// header.
//
//   ExportClipOptions o{.checkpoint = "work/ab12.../checkpoint-0000001500.safetensors",
//                       .model = "tiny", .out = "/models/tiny-mmidd", .tokenizer = "vocab/"};
//   SD2_ASSIGN_OR_RETURN(std::string summary, ExportClip(o));
#ifndef SD2_WORKER_MODELS_EXPORT_H_
#define SD2_WORKER_MODELS_EXPORT_H_

#include <string>

#include "common/status.h"

namespace sd2::worker::models {

struct ExportClipOptions {
  std::string checkpoint;  // a trial's checkpoint-*.safetensors (or any CLIP-named tensors)
  std::string model;       // a named config (tiny, vit_b16, ...) or a Hugging Face folder
  std::string out;         // the folder to write
  std::string tokenizer;   // optional folder with vocab.json + merges.txt, copied to `out`
                           // (its vocabulary size becomes the text tower's)
};

// Writes out/config.json, out/model.safetensors (and the tokenizer files); returns a one-line
// summary (tensors taken from the checkpoint, of how many).
StatusOr<std::string> ExportClip(const ExportClipOptions& o);

}  // namespace sd2::worker::models

#endif  // SD2_WORKER_MODELS_EXPORT_H_
