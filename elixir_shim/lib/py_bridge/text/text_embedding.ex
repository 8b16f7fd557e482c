defmodule PyBridge.Text.TextEmbedding do
  @moduledoc false

  alias PyBridge.Shared

  @pools [nil, :mean_pooling, :cls_token_pooling, :last_token_pooling]

  def serving(model_info, %PyBridge.Tokenizer{}, opts) do
    opts =
      Shared.validate_options!(opts, [
        :compile,
        output_attribute: :pooled_state,
        output_pool: nil,
        embedding_processor: nil,
        defn_options: [],
        preallocate_params: false
      ])

    compile = Shared.compile!(opts[:compile], [:batch_size, :sequence_length])
    Shared.one_of!(opts[:output_pool], @pools, :output_pool)
    Shared.one_of!(opts[:embedding_processor], [nil, :l2_norm], :embedding_processor)

    unless is_atom(opts[:output_attribute]) do
      raise ArgumentError,
            "expected :output_attribute to be an atom, got: #{inspect(opts[:output_attribute])}"
    end

    options = %{
      output_attribute: opts[:output_attribute],
      output_pool: opts[:output_pool],
      embedding_processor: opts[:embedding_processor],
      sequence_length: Shared.sequence_length(compile)
    }

    Shared.serving(model_info, :text_embedding, options, compile, &Shared.validate_text/1)
  end
end
