// Output files are written atomically: to a temporary file in the same folder, flushed, then renamed over the
// target, so an interrupted run never leaves a half-written result.
#pragma once

#include <string>
#include <string_view>

namespace lina {

// Creates parent folders as needed. Throws InputError when the folder cannot be created or written.
void write_file_atomic(const std::string& path, std::string_view content);

}  // namespace lina
