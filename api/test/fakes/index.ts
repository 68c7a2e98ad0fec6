export * from './fake-provider-server.js';
export { openAIWire, startOpenAIFake, startXAIFake, xaiWire } from './openai-server.js';
export { anthropicWire, startAnthropicFake } from './anthropic-server.js';
