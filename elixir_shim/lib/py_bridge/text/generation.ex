defmodule PyBridge.Text.Generation do
  @moduledoc false
  # Text generation (and, through build/6, translation): validation in the
  # caller as Bumblebee does it, `generate` in the worker, and Bumblebee's
  # result shapes, including its streamed text chunks.

  alias PyBridge.Shared
  alias PyBridge.Text.GenerationConfig

  @options [
    :compile,
    defn_options: [],
    preallocate_params: false,
    stream: false,
    stream_done: false
  ]

  def serving(model_info, %PyBridge.Tokenizer{}, %GenerationConfig{} = config, opts) do
    build(
      model_info,
      config,
      opts,
      :generation,
      [
        :for_conditional_generation,
        :for_causal_language_modeling
      ],
      &Shared.batch!(&1, fn input -> validate(input) end)
    )
  end

  @doc false
  # The serving shared by generation and translation. `preprocess` turns the
  # caller's input into {items, multi?}, raising ArgumentError on bad input.
  @spec build(
          map(),
          GenerationConfig.t(),
          keyword(),
          atom(),
          [atom()],
          (term() -> {list(), boolean()})
        ) ::
          PyBridge.Serving.t()
  def build(model_info, config, opts, task, architectures, preprocess) do
    opts = Shared.validate_options!(opts, @options)
    Shared.require_architecture!(model_info, architectures)
    compile = Shared.compile!(opts[:compile], [:batch_size, :sequence_length])
    sequence_length = Shared.sequence_length(compile)
    validate_config!(config)
    stream = opts[:stream]

    options = %{
      generation_config: config |> Map.from_struct() |> Map.delete(:extra_config),
      sequence_length: sequence_length
    }

    serving =
      model_info.model
      |> PyBridge.Serving.new(task, options)
      |> PyBridge.Serving.batch_size(compile[:batch_size])
      |> PyBridge.Serving.client_preprocessing(fn input ->
        if stream and is_list(input) do
          raise ArgumentError,
                "this serving only accepts singular input when stream is enabled," <>
                  " call the serving with each input in the batch separately"
        end

        preprocess.(input)
      end)
      |> PyBridge.Serving.client_postprocessing(fn {results, multi?} ->
        results
        |> caller_padding(sequence_length)
        |> Shared.normalize_output(multi?)
      end)

    if stream do
      # The worker sends each text chunk as it is cut (Bumblebee's rules, in
      # py_bridge/tasks/_text_stream.py); the final reply carries the summary.
      %{
        serving
        | streaming: %{
            done: opts[:stream_done] == true,
            chunk: &[&1],
            final: fn %{results: [%{token_summary: summary}]} ->
              {:done, %{token_summary: summary}}
            end
          }
      }
    else
      serving
    end
  end

  defp validate_config!(%GenerationConfig{} = config) do
    if config.max_new_tokens == nil and config.max_length == nil do
      raise ArgumentError,
            "expected either :max_new_tokens or :max_length option, but neither was given"
    end

    pad = config.pad_token_id || config.eos_token_id |> List.wrap() |> List.first()

    unless pad do
      raise ArgumentError,
            "expected :pad_token_id (or :eos_token_id as a fallback) to be present in" <>
              " generation config, but it was not set. Make sure to load a complete" <>
              " generation config or update it accordingly using PyBridge.configure/2"
    end

    :ok
  end

  # Bumblebee pads each caller's texts together, so `:padding` counts the pad
  # tokens of the caller's own batch, whatever other callers were batched with.
  defp caller_padding(results, sequence_length) do
    longest = results |> Enum.map(&input_length/1) |> Enum.max()
    padded = padded_length(longest, sequence_length)

    Enum.map(results, fn %{results: [result]} = output ->
      summary = %{result.token_summary | padding: padded - result.token_summary.input}
      %{output | results: [%{result | token_summary: summary}]}
    end)
  end

  defp input_length(%{results: [%{token_summary: %{input: input}}]}), do: input

  defp padded_length(longest, nil), do: longest
  defp padded_length(longest, length) when is_integer(length), do: max(length, longest)

  defp padded_length(longest, lengths) when is_list(lengths) do
    sorted = Enum.sort(lengths)
    Enum.find(sorted, List.last(sorted), &(&1 >= longest))
  end

  @doc false
  # Bumblebee's default seed: a different one for every call.
  @spec seed(map()) :: {:ok, integer()} | {:error, String.t()}
  def seed(input) do
    case input[:seed] do
      nil -> {:ok, :erlang.system_time()}
      seed when is_integer(seed) -> {:ok, seed}
      other -> {:error, "expected :seed to be an integer or nil, got: #{inspect(other)}"}
    end
  end

  defp validate(text) when is_binary(text), do: validate(%{text: text})

  defp validate(%{text: text} = input) do
    with {:ok, text} <- Shared.validate_text(text),
         {:ok, seed} <- seed(input) do
      {:ok, %{text: text, seed: seed}}
    end
  end

  defp validate(%{} = input),
    do: {:error, "expected the input map to have :text key, got: #{inspect(input, limit: 20)}"}

  defp validate(input),
    do: {:error, "expected either a string or a map, got: #{inspect(input, limit: 20)}"}
end
