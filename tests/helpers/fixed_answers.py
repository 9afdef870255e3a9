class FixedAnswers:
    """A pipeline stand-in for benchmark runs: answers the prompts with a list of outputs, cycled."""
    backend = 'fixed'

    def __init__(self, outputs):
        self.outputs = outputs

    def batch_answers(self, prompts, gen_config):
        return [self.outputs[i % len(self.outputs)] for i in range(len(prompts))]
