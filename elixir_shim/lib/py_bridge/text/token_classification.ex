defmodule PyBridge.Text.TokenClassification do
  @moduledoc false

  alias PyBridge.Shared

  @aggregations [nil, :same, :word_first, :word_average, :word_max]

  def serving(model_info, %PyBridge.Tokenizer{}, opts) do
    Shared.require_architecture!(model_info, [:for_token_classification])

    opts =
      Shared.validate_options!(opts, [
        :aggregation,
        :compile,
        scores_function: :softmax,
        ignored_labels: ["O"],
        defn_options: [],
        preallocate_params: false
      ])

    compile = Shared.compile!(opts[:compile], [:batch_size, :sequence_length])
    # Bumblebee only finds a bad :aggregation when the first result comes
    # back; failing here, before a worker loads the model, is kinder.
    Shared.one_of!(opts[:aggregation], @aggregations, :aggregation)
    Shared.one_of!(opts[:scores_function], [:softmax, :sigmoid, :none], :scores_function)
    Shared.string_list!(opts[:ignored_labels], ":ignored_labels")

    options = %{
      aggregation: opts[:aggregation],
      ignored_labels: opts[:ignored_labels],
      scores_function: opts[:scores_function],
      sequence_length: Shared.sequence_length(compile)
    }

    Shared.serving(model_info, :token_classification, options, compile, &Shared.validate_text/1)
  end
end
