defmodule PyBridge.Text.TextRerankingQwen3 do
  @moduledoc false

  alias PyBridge.Shared

  # The Qwen3-Reranker prompt, as its model card and Bumblebee write it.
  @instruction_prefix "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n"
  @instruction_suffix "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
  @task_description "Given a web search query, retrieve relevant passages that answer the query"

  @doc false
  def defaults do
    %{
      instruction_prefix: @instruction_prefix,
      instruction_suffix: @instruction_suffix,
      task_description: @task_description
    }
  end

  def serving(model_info, %PyBridge.Tokenizer{}, opts) do
    Shared.require_architecture!(model_info, [:for_causal_language_modeling])

    opts =
      Shared.validate_options!(opts, [
        :compile,
        :yes_token,
        :no_token,
        :instruction_prefix,
        :instruction_suffix,
        :task_description,
        defn_options: [],
        preallocate_params: false
      ])

    compile = Shared.compile!(opts[:compile], [:batch_size, :sequence_length])

    # nil (or absent) means the default, as Bumblebee's `opts[key] || default`.
    # A nil token id is inferred by the worker, which has the vocabulary.
    options =
      for {key, default} <- defaults(), into: %{} do
        {key, string_option!(opts, key, default)}
      end
      |> Map.merge(%{
        yes_token: token_option!(opts, :yes_token),
        no_token: token_option!(opts, :no_token),
        sequence_length: Shared.sequence_length(compile)
      })

    model_info.model
    |> PyBridge.Serving.new(:text_reranking_qwen3, options)
    |> PyBridge.Serving.batch_size(compile[:batch_size])
    |> PyBridge.Serving.client_preprocessing(&validate_input!/1)
    |> PyBridge.Serving.client_postprocessing(fn
      {results, true} -> %{scores: results}
      {[result], false} -> %{scores: result}
    end)
  end

  defp string_option!(opts, key, default) do
    case opts[key] do
      nil ->
        default

      value when is_binary(value) ->
        value

      other ->
        raise ArgumentError, "expected #{inspect(key)} to be a string, got: #{inspect(other)}"
    end
  end

  defp token_option!(opts, key) do
    case opts[key] do
      id when is_nil(id) or (is_integer(id) and id >= 0) ->
        id

      other ->
        raise ArgumentError,
              "expected #{inspect(key)} to be a token id (a non-negative integer), got: #{inspect(other)}"
    end
  end

  # Bumblebee's reranker validates its input itself, with these messages
  # (no "invalid input" prefix), and always answers one map.
  defp validate_input!({query, document} = pair) when is_binary(query) and is_binary(document) do
    {[valid_pair!(pair)], false}
  end

  defp validate_input!([_ | _] = list) do
    pairs =
      Enum.map(list, fn
        {query, document} = pair when is_binary(query) and is_binary(document) ->
          valid_pair!(pair)

        other ->
          raise ArgumentError,
                "expected a query-document tuple {query, doc} where both are strings, got: #{inspect(other, limit: 20)}"
      end)

    {pairs, true}
  end

  defp validate_input!(other) do
    raise ArgumentError,
          "expected a query-document tuple {query, doc} or a list of such tuples, got: #{inspect(other, limit: 20)}"
  end

  defp valid_pair!({query, document} = pair) do
    unless String.valid?(query) and String.valid?(document) do
      raise ArgumentError,
            "expected a query-document tuple {query, doc} where both are valid UTF-8 strings, got: #{inspect(pair, limit: 20)}"
    end

    pair
  end
end
