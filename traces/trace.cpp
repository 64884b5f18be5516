// Placeholder until the trace library lands (issue: expert-selection traces).
namespace lina::traces {}
