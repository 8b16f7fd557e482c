defmodule PyBridge.Text.Translation do
  @moduledoc false
  # Translation: generation on an encoder-decoder model whose input names a
  # source and a target language token. The worker checks the tokens against
  # the vocabulary (this side has no vocabulary).

  alias PyBridge.Shared
  alias PyBridge.Text.{Generation, GenerationConfig}

  def serving(model_info, %PyBridge.Tokenizer{}, %GenerationConfig{} = config, opts) do
    Generation.build(model_info, config, opts, :translation, [:for_conditional_generation], fn
      input ->
        {items, multi?} = Shared.batch!(input, &validate/1)
        same_source_language!(items)
        {items, multi?}
    end)
  end

  defp validate(
         %{text: text, source_language_token: source, target_language_token: target} = input
       ) do
    with {:ok, text} <- Shared.validate_text(text),
         {:ok, source} <- token(source, :source_language_token),
         {:ok, target} <- token(target, :target_language_token),
         {:ok, seed} <- Generation.seed(input) do
      {:ok,
       %{text: text, source_language_token: source, target_language_token: target, seed: seed}}
    end
  end

  defp validate(%{} = input) do
    {:error,
     "expected the input map to have :text, :source_language_token and :target_language_token keys, " <>
       "got: #{inspect(input, limit: 20)}"}
  end

  defp validate(input), do: {:error, "expected a map, got: #{inspect(input, limit: 20)}"}

  defp token(token, _key) when is_binary(token), do: {:ok, token}

  defp token(other, key),
    do: {:error, "expected #{inspect(key)} to be a string, got: #{inspect(other, limit: 20)}"}

  defp same_source_language!(items) do
    case Enum.uniq_by(items, & &1.source_language_token) do
      [_one] ->
        :ok

      _several ->
        raise ArgumentError,
              "the translation serving supports a list of inputs only when all" <>
                " of them have the same :source_language_token. To process multiple" <>
                " inputs with different source language, configure :compile options" <>
                " with a desired batch size, start a serving process and use" <>
                " Task.async_stream/1 with PyBridge.Serving.batched_run/2"
    end
  end
end
