// The exact request as Python (the openai client) and as curl, ready to copy.

// Fields the openai client takes as keyword arguments; everything else goes in extra_body.
const OPENAI_ARGS = new Set([
  "model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens",
  "max_completion_tokens", "seed", "stop", "n", "response_format", "logprobs", "top_logprobs",
  "frequency_penalty", "presence_penalty", "user", "metadata",
]);

/** JSON value -> Python literal (True/False/None, dicts and lists indented). */
export function pyLiteral(value, indent = 0) {
  const pad = "    ".repeat(indent + 1);
  const end = "    ".repeat(indent);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => pad + pyLiteral(v, indent + 1)).join(",\n")},\n${end}]`;
  }
  const entries = Object.entries(value);
  if (!entries.length) return "{}";
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${pyLiteral(v, indent + 1)}`).join(",\n")},\n${end}}`;
}

export function pythonSnippet(body, origin, key) {
  const args = [];
  const extra = {};
  for (const [name, value] of Object.entries(body)) {
    if (OPENAI_ARGS.has(name)) args.push(`    ${name}=${pyLiteral(value, 1)},`);
    else extra[name] = value;
  }
  if (Object.keys(extra).length) args.push(`    extra_body=${pyLiteral(extra, 1)},`);
  const call = `response = client.chat.completions.create(\n${args.join("\n")}\n)`;
  const use = body.stream
    ? "for chunk in response:\n    if chunk.choices and chunk.choices[0].delta.content:\n        print(chunk.choices[0].delta.content, end=\"\", flush=True)\nprint()"
    : "print(response.choices[0].message.content)";
  return [
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${JSON.stringify(origin + "/v1")}, api_key=${JSON.stringify(key || "none")})`,
    call,
    use,
  ].join("\n");
}

export function curlSnippet(body, origin, key) {
  const json = JSON.stringify(body, null, 2).replace(/'/g, "'\\''");
  const auth = key ? `  -H 'Authorization: Bearer ${key.replace(/'/g, "'\\''")}' \\\n` : "";
  const stream = body.stream ? "  -N \\\n" : "";
  return `curl ${origin}/v1/chat/completions \\\n${stream}${auth}  -H 'Content-Type: application/json' \\\n  -d @- <<'JSON'\n${json}\nJSON`;
}

/** The snippet as shown: data: URIs longer than a line are shortened (Copy copies them whole). */
export function shortened(text) {
  return text.replace(/data:([a-z0-9.+\/-]+);base64,([A-Za-z0-9+\/=]{60})[A-Za-z0-9+\/=]+/gi, "data:$1;base64,$2…");
}
